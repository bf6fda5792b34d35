"""Address lists (From, To, Cc, Reply-To) parsed from hostile header values.

``email.utils.getaddresses`` changed behaviour within 3.11 patch releases (the strict mode of
the CVE-2023-27043 fix), so the same header gave different addresses on different hosts.
This small tokenizer gives one answer everywhere: quoted strings, comments, ``<angle>``
addresses, groups and garbage are recognised, and only the angle address (or the bare
addr-spec) is authoritative. A display name that looks like an address stays a name.
Encoded words are decoded after the structure is known, so an encoded ``<`` or ``,`` in a
name cannot smuggle in another address.
"""

from __future__ import annotations

import re

from eddymail.mail.message.headervalues import clean_text, decode_words
from eddymail.patterns import LazyPattern

MAX_ADDRESSES = 1000
MAX_NAME_CHARS = 256
_ATEXT = r"[^\s\x00-\x1f\x7f()<>\[\]:;@\\,.\"]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_LOCAL_PART = LazyPattern(rf'(?:{_DOT_ATOM}|"(?:[^"\\\x00-\x1f\x7f]|\\.)*")')
_DOMAIN_LABEL = LazyPattern(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_DOMAIN_LITERAL = LazyPattern(r"\[[A-Za-z0-9.:]{1,64}\]")
_SPECIAL = '()<>,;:"\\'


def parse_address_list(text: str) -> tuple[list[tuple[str, str]], int]:
    """Parse an address header: ``([(address, name), ...], number of invalid entries)``.

    A group's members are read as plain addresses; a group without members
    (``undisclosed-recipients:;``) gives none. A domainless local name is listed and
    counted invalid too.

    ``text`` is the unfolded value with raw 8-bit bytes already decoded but RFC 2047 encoded
    words still encoded. Addresses come back with the domain lower-cased and the local part
    as sent; names decoded and cleaned ("" when absent).
    """
    found: list[tuple[str, str]] = []
    invalid = 0
    for mailbox in _split_mailboxes(_tokenize(text)):
        # One word, or one in angle brackets: "Totally not an address" is no local name.
        one_name = any(kind == "angle" for kind, _ in mailbox) or sum(
            kind in ("text", "quoted") for kind, _ in mailbox) == 1
        for address, name in _mailbox_candidates(mailbox):
            normalized = normalize_address(address)
            if normalized is None:
                invalid += 1
                # A local name without a domain (``<moderator>``, ``postmaster``), as list
                # servers and local mailers write: kept for people to read, but still
                # counted invalid, so it never identifies a sender or receives our mail.
                local = address.strip()
                if not (one_name and local and "@" not in local
                        and _LOCAL_PART.fullmatch(local)):
                    continue
                normalized = local
            if len(found) < MAX_ADDRESSES:
                found.append((normalized, _decode_name(name)))
    return found, invalid


def normalize_address(address: str) -> str | None:
    """``Local@Example.COM`` -> ``Local@example.com`` when syntactically valid, else None."""
    address = address.strip()
    if len(address) > 320 or "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    if not local or not domain or not _LOCAL_PART.fullmatch(local):
        return None
    domain = domain.lower()
    if not _DOMAIN_LITERAL.fullmatch(domain):
        labels = domain.split(".")
        if len(domain) > 255 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
            return None
    return f"{local}@{domain}"


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Tokens: ("quoted", s), ("comment", s), ("angle", s), (",", ""), (":", ""),
    ("ws", " "), ("text", s). Unterminated constructs run to the end of the value."""
    tokens: list[tuple[str, str]] = []
    position = 0
    length = len(text)
    while position < length:
        char = text[position]
        if char == '"':
            value, position = _read_quoted(text, position + 1)
            tokens.append(("quoted", value))
        elif char == "(":
            value, position = _read_comment(text, position + 1)
            tokens.append(("comment", value))
        elif char == "<":
            end = _find_angle_end(text, position + 1)
            tokens.append(("angle", text[position + 1 : end]))
            position = end + 1
        elif char in ",;":
            tokens.append((",", ""))
            position += 1
        elif char == ":":
            tokens.append((":", ""))
            position += 1
        elif char.isspace():
            while position < length and text[position].isspace():
                position += 1
            tokens.append(("ws", " "))
        else:
            start = position
            while (
                position < length
                and text[position] not in _SPECIAL
                and not text[position].isspace()
            ):
                position += 1
            if position == start:  # a lone ")", ">" or "\\"
                position += 1
            tokens.append(("text", text[start:position]))
    return tokens


def _read_quoted(text: str, position: int) -> tuple[str, int]:
    chars: list[str] = []
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
            continue
        if char == '"':
            return "".join(chars), position + 1
        chars.append(char)
        position += 1
    return "".join(chars), position


def _read_comment(text: str, position: int) -> tuple[str, int]:
    depth = 1
    chars: list[str] = []
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            chars.append(text[position + 1])
            position += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return "".join(chars), position + 1
        chars.append(char)
        position += 1
    return "".join(chars), position


def _find_angle_end(text: str, position: int) -> int:
    in_quotes = False
    while position < len(text):
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if char == '"':
            in_quotes = not in_quotes
        elif char == ">" and not in_quotes:
            return position
        position += 1
    return len(text)


def _split_mailboxes(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Split at commas/semicolons; drop a group's display name (``Team: a@x, b@y;``)."""
    mailboxes: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for token in tokens:
        if token[0] == ",":
            mailboxes.append(current)
            current = []
        elif token[0] == ":" and not any(kind == "angle" for kind, _ in current):
            current = []
        else:
            current.append(token)
    mailboxes.append(current)
    return [mailbox for mailbox in mailboxes if any(kind != "ws" for kind, _ in mailbox)]


def _mailbox_candidates(mailbox: list[tuple[str, str]]) -> list[tuple[str, str]]:
    angles = [index for index, (kind, _) in enumerate(mailbox) if kind == "angle"]
    if angles:
        phrase = _phrase(mailbox[: angles[0]])
        if not phrase:
            phrase = " ".join(value for kind, value in mailbox if kind == "comment")
        # Two angle addresses in one mailbox is ambiguous: both are returned, so a From
        # header like this never counts as one valid sender.
        return [(_strip_route(mailbox[index][1]), phrase) for index in angles]
    spec = "".join(
        f'"{value}"' if kind == "quoted" else value
        for kind, value in mailbox
        if kind in ("text", "quoted", ":")
    )
    name = " ".join(value for kind, value in mailbox if kind == "comment")
    return [(spec, name)]


def _phrase(tokens: list[tuple[str, str]]) -> str:
    words: list[str] = []
    for kind, value in tokens:
        if kind in ("text", "quoted"):
            words.append(value)
        elif kind == "ws" and words:
            words.append(" ")
    return "".join(words).strip()


def _strip_route(address: str) -> str:
    """``<@relay.example:user@host>`` (obsolete source route) -> ``user@host``."""
    address = address.strip()
    if '"' not in address:
        address = re.sub(r"\s+", "", address)
    if address.startswith("@") and ":" in address:
        return address.split(":", 1)[1]
    return address


def _decode_name(name: str) -> str:
    if "=?" in name:
        name = decode_words(name.encode("utf-8", "surrogateescape"))
    name = clean_text(name)
    # A name is shown in every list and stored with the user; 40,000 nested parentheses
    # make a valid (comment) name but not a useful one.
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"
