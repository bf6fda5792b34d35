"""SASL (RFC 4422): what a client sends after AUTHENTICATE (IMAP) or AUTH (POP3, SMTP).

Each protocol client has one ``_authenticate`` method that carries a mechanism's messages;
this module builds them, the same for all three: PLAIN (RFC 4616) for passwords, and for an
OAuth 2.0 bearer token XOAUTH2 (Google's) and OAUTHBEARER (RFC 7628), with the dummy answer to
a server's error challenge, the choice of mechanism from what the server offers, and the
reading of that error challenge (base64 JSON with ``status``, ``scope``...). Every message
built here holds a secret: callers send it and forget it, and never log it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eddymail.errors import BearerRefused
from eddymail.mail.wire.endpoint import Endpoint

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (OAUTHBEARER, XOAUTH2)


class Secret:
    """A password that never shows itself: not in repr, str, logs or tracebacks with locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        """The password itself, for the one call that sends it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


class BearerToken:
    """An access token to sign in with, and the mechanisms to use it with, best first.

    Never shows itself: not in ``repr``, ``str``, logs or tracebacks with locals.
    """

    __slots__ = ("_token", "mechanisms")

    def __init__(self, token: str, mechanisms: Sequence[str] = MECHANISMS) -> None:
        self._token = token
        self.mechanisms = tuple(m.upper() for m in mechanisms) or MECHANISMS

    def reveal(self) -> str:
        """The token itself, for the one call that sends it."""
        return self._token

    def __repr__(self) -> str:
        return f"BearerToken('********', mechanisms={self.mechanisms!r})"

    __str__ = __repr__


@dataclass(frozen=True)
class Refusal:
    """What a server's error challenge said about a refused token (all parts optional)."""

    status: str = ""
    scope: str = ""
    text: str = ""

    def describe(self) -> str:
        """``status 401, wants scope mail``: the parts a person can act on."""
        parts = [f"status {self.status}" if self.status else "",
                 f"wants scope {self.scope}" if self.scope else ""]
        return ", ".join(part for part in parts if part) or self.text


def plain_response(login: str, password: str) -> bytes:
    """PLAIN (RFC 4616): no authorisation identity, then the login and the password in UTF-8."""
    return b"\0" + login.encode("utf-8") + b"\0" + password.encode("utf-8")


def choose_mechanism(offered: Iterable[str], preferred: Sequence[str]) -> str:
    """The first of ``preferred`` the server offers; else the first of ``preferred``.

    Some servers take a mechanism they do not announce (Yandex's IMAP takes XOAUTH2 without
    listing it): trying it costs one refusal at worst.
    """
    names = {name.upper() for name in offered}
    for mechanism in preferred:
        if mechanism in names:
            return mechanism
    return preferred[0]


def initial_response(mechanism: str, login: str, token: str, host: str, port: int) -> bytes:
    """The client's first message (unencoded) for ``mechanism``."""
    if mechanism == XOAUTH2:
        return f"user={login}\x01auth=Bearer {token}\x01\x01".encode()
    if mechanism == OAUTHBEARER:
        # RFC 7628 §3.1: a GS2 header naming the user, then key=value pairs after ^A.
        saslname = login.replace("=", "=3D").replace(",", "=2C")
        return (f"n,a={saslname},\x01host={host}\x01port={port}\x01auth=Bearer {token}"
                "\x01\x01").encode()
    raise ValueError(f"not a bearer mechanism: {mechanism}")


def opening(offered: Iterable[str], mechanisms: Sequence[str], endpoint: Endpoint,
            token: str) -> tuple[str, bytes]:
    """The mechanism to use (see :func:`choose_mechanism`) and the client's first message."""
    mechanism = choose_mechanism(offered, mechanisms)
    return mechanism, initial_response(mechanism, endpoint.login, token, endpoint.host,
                                       endpoint.port)


def dummy_response(mechanism: str) -> bytes:
    """The answer to an error challenge, after which the server fails the exchange."""
    return b"\x01" if mechanism == OAUTHBEARER else b""


def read_challenge(data: bytes | str) -> Refusal:
    """Decode an error challenge: base64 (or already decoded) JSON; anything else as text."""
    raw = data.encode("latin-1", "replace") if isinstance(data, str) else data
    raw = raw.strip()
    try:
        decoded = base64.b64decode(raw, validate=True) if raw else b""
    except (binascii.Error, ValueError):
        decoded = raw
    try:
        document = json.loads(decoded or raw)
    except (ValueError, UnicodeDecodeError):
        document = None
    if not isinstance(document, dict):
        text = (decoded or raw).decode("utf-8", "replace")
        return Refusal(text=" ".join(text.split())[:200])
    return Refusal(status=_printable(document.get("status")),
                   scope=_printable(document.get("scope")),
                   text=_printable(json.dumps(document))[:200])


def _printable(value: object) -> str:
    text = "" if value is None else str(value)
    return "".join(ch for ch in text if ch.isprintable())[:200]


def credential_parts(credential: str | BearerToken | None) -> tuple[str | None,
                                                                    tuple[str, ...] | None]:
    """A client's credential as (the secret, the bearer mechanisms or None for a password)."""
    if isinstance(credential, BearerToken):
        return credential.reveal(), credential.mechanisms
    return credential, None


def refused(protocol: str, address: str, mechanism: str, answer: str,
            challenges: Sequence[bytes], operation: str,
            offered: Iterable[str] = ()) -> BearerRefused:
    """The error for a server that refused the token, with what its error challenge said.

    ``offered`` is the server's list of SASL mechanisms: a mechanism tried without being
    announced (see :func:`choose_mechanism`) and refused says so, since then the server may
    not take OAuth 2.0 at all."""
    refusal = read_challenge(challenges[-1]) if challenges else Refusal()
    detail = refusal.describe()
    names = sorted({_printable(name).upper()[:40] for name in offered})
    announced = mechanism in names
    if not announced:
        detail = ", ".join(part for part in (detail, "not announced by the server, which offers "
                                             + (" ".join(names) or "no SASL mechanism"))
                           if part)
    return BearerRefused(
        f"{protocol.upper()} login with {address} failed: the server refused the access token "
        f"({mechanism}{', ' + detail if detail else ''}).",
        status=refusal.status, scope=refusal.scope, operation=operation,
        answer=f"{answer} [{detail}]" if detail else answer, announced=announced,
    )
