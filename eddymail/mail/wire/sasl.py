"""SASL initial responses (RFC 4422): what a client sends after AUTHENTICATE (IMAP) or AUTH
(POP3, SMTP). Each protocol client has one ``_authenticate(mechanism, initial_response)``
method that carries such a response; this module builds them, the same for all three.
"""

from __future__ import annotations


def plain_response(login: str, password: str) -> bytes:
    """PLAIN (RFC 4616): no authorisation identity, then the login and the password in UTF-8."""
    return b"\0" + login.encode("utf-8") + b"\0" + password.encode("utf-8")
