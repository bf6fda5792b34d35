"""Mail protocols (IMAP, POP3, SMTP) and message handling; never imports the database."""
