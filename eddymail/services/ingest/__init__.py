"""From raw bytes to a ticket: the ingest pipeline, threading, raw mail and the quarantine."""
