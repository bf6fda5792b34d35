"""Sender verification from ``Authentication-Results`` headers (RFC 8601).

Anyone can write any From address. The receiving mail provider checks SPF, DKIM and DMARC
and records the outcome in an ``Authentication-Results`` header that names it (its
authserv-id, e.g. ``mx.google.com``). Only the topmost header with the channel's configured
authserv-id counts: lower ones, or ones with another id, may have been written by the
sender himself.

The verdict: a DMARC pass or fail for the From domain decides when present; otherwise a
passing SPF or DKIM check whose domain is aligned with the From domain passes, checks that
ran but gave no aligned pass fail, and no checks at all mean "none" (not verified, not
failed). No header with the configured authserv-id at all is "missing": the provider vouched
for nothing, so the mail is as unverified as one that failed (anyone can send mail around a
provider's checks, e.g. straight to the mailbox's server).

Even the trusted header carries text the sender chose (the envelope sender, a DKIM
identity), so it is read token by token: quoted strings and comments are never split on
``;`` or mistaken for a result of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from eddymail.mail.message.parttree import Headers
from eddymail.patterns import LazyPattern

PASS, FAIL, NONE, MISSING = "pass", "fail", "none", "missing"
#: Verdicts that leave the sender unverified: such mail registers nobody and triggers nothing.
UNVERIFIED = (FAIL, MISSING)

# method[/version] = result, then its properties (RFC 8601 section 2.2).
_RESULT = LazyPattern(r"^\s*([a-z0-9_-]+)(?:\s*/\s*\d+)?\s*=\s*([a-z]+)(.*)$",
                     re.IGNORECASE | re.DOTALL)
# ptype.property = value; a value may mix quoted strings and plain characters
# ("a b"@example.com is one value).
_PROPERTY = LazyPattern(
    r"([a-z0-9_-]+)\.([a-z0-9_-]+)\s*=\s*((?:\"(?:[^\"\\]|\\.)*\"|[^\s\"])+)", re.IGNORECASE)
MAX_HEADERS = 50  # the trusted one is near the top; a thousand forged ones cost nothing


def authentication_results(headers: Headers) -> list[str]:
    """A message's ``Authentication-Results`` header values, topmost first.

    8-bit bytes (they can only be in text the sender chose) become U+FFFD.
    """
    return [value.decode("ascii", "replace") for value in
            headers.all("authentication-results")[:MAX_HEADERS]]


def verify_sender(results: Sequence[str], authserv_id: str, from_domain: str) -> str:
    """``pass``, ``fail``, ``none`` or ``missing`` for the From domain, by the trusted header.

    ``results`` are the message's Authentication-Results values, topmost first
    (``ParsedMessage.authentication_results``); ``missing``: none has ``authserv_id``.
    """
    trusted = authserv_id.strip().lower()
    if not trusted:
        return NONE
    for value in results[:MAX_HEADERS]:
        server, checks = _parse(value)
        if server == trusted:
            return _verdict(checks, from_domain.lower()) if from_domain else FAIL
    return MISSING


def split_header(value: str) -> list[str]:
    """The ``;``-separated parts of a header, comments removed, quoted strings kept whole."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0  # comment nesting
    quoted = False
    escaped = False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                current.append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if depth == 0:
                current.append(char)
            continue
        if quoted:
            current.append(char)
            quoted = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                current.append(" ")
        elif char == "(":
            depth = 1
        elif char == '"':
            quoted = True
            current.append(char)
        elif char == ";":
            parts.append(" ".join("".join(current).split()))
            current = []
        else:
            current.append(char)
    parts.append(" ".join("".join(current).split()))
    return parts


def _parse(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    parts = split_header(value)
    server = parts[0].split()[0].lower() if parts and parts[0] else ""
    results = []
    for part in parts[1:]:
        match = _RESULT.match(part)
        if not match:
            continue
        method, result, rest = match.group(1).lower(), match.group(2).lower(), match.group(3)
        if rest and not rest[0].isspace():
            continue  # "pass" glued to more text is not a result keyword
        properties = {f"{p.lower()}.{n.lower()}": v.lower()
                      for p, n, v in _PROPERTY.findall(rest)}
        results.append((method, result, properties))
    return server, results


def _domain_of(value: str) -> str:
    """The domain of a property value: ``user@dom``, ``"quoted"@dom``, ``@dom`` or ``dom``."""
    domain = value.rpartition("@")[2].strip().strip(".")
    # Whatever still holds a quote or a space is not a domain name anybody verified.
    return "" if any(char in domain for char in "\" \\") else domain


def _verdict(results: list[tuple[str, str, dict[str, str]]], from_domain: str) -> str:
    checked = False
    for method, result, properties in results:
        if method != "dmarc" or result not in (PASS, FAIL):
            continue
        # A DMARC verdict about another From domain (a second From header the provider
        # read and we did not) says nothing about the address we show: not a pass.
        if _domain_of(properties.get("header.from", from_domain)) == from_domain:
            return result
        checked = True
    for method, result, properties in results:
        if method == "dkim":
            domain = _domain_of(properties.get("header.d") or properties.get("header.i", ""))
        elif method == "spf":
            # SPF checks the envelope sender; for a null sender (bounces) the HELO name.
            domain = _domain_of(properties.get("smtp.mailfrom", "")
                                or properties.get("smtp.helo", ""))
        else:
            continue
        checked = True
        if result == PASS and domain and _aligned(domain, from_domain):
            return PASS
    return FAIL if checked else NONE


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: one domain is the other or a subdomain of it."""
    return (domain == from_domain or from_domain.endswith("." + domain)
            or domain.endswith("." + from_domain))
