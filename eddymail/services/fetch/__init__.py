"""One ``fetch`` run: the IMAP and POP3 fetchers, their shared state, locks and read-ahead."""
