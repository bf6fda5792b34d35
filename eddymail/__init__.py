"""eddymail: a mail-to-ticket helpdesk for the terminal."""

__version__ = "0.1.0"
