"""Talking to mail servers: IMAP, POP3 and SMTP sessions, TLS, endpoints, diagnosis."""
