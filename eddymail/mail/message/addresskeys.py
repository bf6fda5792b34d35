"""One spelling per mailbox: the key under which addresses are counted, matched and merged.

The same mailbox can be written many ways: ``Anna@Пример.РФ``, ``anna@xn--e1afmkfd.xn--p1ai``,
a local part in NFC or NFD. Counting per recipient, finding a user, recognising a ticket's
participant or one of our own channels must see one mailbox, or a forger gets a fresh cap
(and a stranger a fresh identity) per spelling. The rules:

- the domain: every ``xn--`` label is decoded from Punycode (IDNA's ASCII form) to Unicode,
  then labels are NFC-normalised and lower-cased. No other IDNA mapping is applied (IDNA
  2003 would turn ``straße`` into ``strasse``, a different domain under IDNA 2008). An
  address literal (``[192.0.2.1]``, ``[IPv6:...]``) is only lower-cased.
- the local part: NFC-normalised and lower-cased. RFC 5321 lets a server tell ``Anna`` from
  ``anna``, but no provider our users meet does, and telling them apart would let anyone
  double the automatic mail to a mailbox. A quoted local part keeps its quotes; dots and
  ``+tags`` are *not* folded (only some providers ignore them).

Keys are for comparing and storing lookups; mail is still sent to the address as written
(``compose`` turns the domain into its ASCII form for SMTP).
"""

from __future__ import annotations

import contextlib
import unicodedata


def address_key(address: str) -> str:
    """The comparison key of ``address`` (see the module docstring); "" for ""."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return _fold(address.strip())
    return f"{_fold(local)}@{domain_key(domain)}"


def domain_key(domain: str) -> str:
    """The comparison key of a domain: Unicode labels, NFC, lower case."""
    domain = domain.strip().rstrip(".")
    if domain.startswith("["):
        return domain.lower()
    return ".".join(_label(label) for label in domain.split("."))


def _label(label: str) -> str:
    if label[:4].lower() == "xn--":
        with contextlib.suppress(UnicodeError, ValueError):  # not Punycode: kept as written
            label = label[4:].lower().encode("ascii").decode("punycode")
    return _fold(label)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()
