"""``eddymail watch``: a long-running alternative to cron that turns mail into tickets within
seconds (IMAP IDLE, polling for POP3), sends the outbox as it fills and follows channel
changes without a restart."""
