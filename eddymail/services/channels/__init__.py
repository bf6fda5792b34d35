"""Mailboxes: storing them, resolving their settings, endpoints, and ``channel test``."""
