"""What a session raises when the other side does not behave like the server it expects.

Raised by the connections (imapconnection, pop3connection) and turned into a sentence for a
person by :mod:`eddymail.mail.wire.diagnose`.
"""

from __future__ import annotations


class ResponseTooLarge(Exception):
    """The server announced (or sent) more bytes in one response than the client accepts.

    Raised *before* the bytes are read, so a hostile or broken server cannot make eddymail
    allocate gigabytes. The connection is unusable afterwards (the bytes are still coming).
    """

    def __init__(self, size: int | None, limit: int, what: str = "response") -> None:
        amount = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"the server announced a {what} of {amount}, over the limit of "
                         f"{limit} bytes")
        self.size = size
        self.limit = limit


class UnexpectedGreeting(Exception):
    """The first line on a connection is not the greeting of the expected protocol."""

    def __init__(self, protocol: str, greeting: str) -> None:
        super().__init__(f"unexpected greeting: {greeting}")
        self.protocol = protocol
        self.greeting = greeting
