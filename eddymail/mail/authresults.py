"""Sender verification from ``Authentication-Results`` headers (RFC 8601).

Anyone can write any From address. The receiving mail provider checks SPF, DKIM and DMARC
and records the outcome in an ``Authentication-Results`` header that names it (its
authserv-id, e.g. ``mx.google.com``). Only the topmost header with the channel's configured
authserv-id counts: lower ones, or ones with another id, may have been written by the
sender himself.

The verdict: DMARC pass or fail decides when present; otherwise a passing SPF or DKIM check
whose domain is aligned with the From domain passes, checks that ran but gave no aligned
pass fail, and no checks at all mean "none" (not verified, not failed).
"""

from __future__ import annotations

import re
from email.parser import BytesHeaderParser
from email.policy import compat32

PASS, FAIL, NONE = "pass", "fail", "none"

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)\s*=\s*([a-z]+)\b(.*)$", re.IGNORECASE | re.DOTALL)
_PROPERTY = re.compile(r"([a-z0-9_-]+)\.([a-z0-9_-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)", re.IGNORECASE)
MAX_HEADERS = 50  # the trusted one is near the top; a thousand forged ones cost nothing


def authentication_results(raw: bytes) -> list[str]:
    """The ``Authentication-Results`` header values of a raw message, topmost first."""
    header_block = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block)
    return [str(value) for value in (headers.get_all("Authentication-Results") or [])][
        :MAX_HEADERS]


def verify_sender(raw: bytes, authserv_id: str, from_domain: str) -> str:
    """``pass``, ``fail`` or ``none`` for the From domain, by the trusted header only."""
    trusted = authserv_id.strip().lower()
    if not trusted or not from_domain:
        return NONE
    for value in authentication_results(raw):
        server, results = _parse(value)
        if server == trusted:
            return _verdict(results, from_domain.lower())
    return NONE


def _parse(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]]:
    text = " ".join(value.split())
    while True:  # comments nest: remove innermost first
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    parts = [part.strip() for part in text.split(";")]
    server = parts[0].split()[0].lower() if parts and parts[0] else ""
    results = []
    for part in parts[1:]:
        match = _RESULT.match(part)
        if not match:
            continue
        method, result, rest = match.group(1).lower(), match.group(2).lower(), match.group(3)
        properties = {f"{p.lower()}.{n.lower()}": v.strip('"').lower()
                      for p, n, v in _PROPERTY.findall(rest)}
        results.append((method, result, properties))
    return server, results


def _verdict(results: list[tuple[str, str, dict[str, str]]], from_domain: str) -> str:
    dmarc = [result for method, result, _ in results if method == "dmarc"]
    if dmarc and dmarc[0] in (PASS, FAIL):
        return dmarc[0]
    checked = False
    for method, result, properties in results:
        if method == "dkim":
            domain = properties.get("header.d") or properties.get("header.i", "").lstrip("@")
        elif method == "spf":
            domain = properties.get("smtp.mailfrom", "").rpartition("@")[2]
        else:
            continue
        checked = True
        domain = domain.rpartition("@")[2]
        if result == PASS and domain and _aligned(domain, from_domain):
            return PASS
    return FAIL if checked else NONE


def _aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: one domain is the other or a subdomain of it."""
    return (domain == from_domain or from_domain.endswith("." + domain)
            or domain.endswith("." + from_domain))
