"""Searching tickets: one call for SQLite and PostgreSQL, ranked, with a snippet per ticket.

The index (``eddymail.db.searchindex``) holds every ticket message: subject, people (the
sender, the recipients, the agent) and body. It is written in the transaction that stores a
message (``index_message``: ingest, replies, notes), so a search never misses a committed
message, and rebuilt from the stored messages by ``eddymail search rebuild``.

``ticket list --search`` narrows its own query with the search, so status, department and
assignee filters apply inside one query and the page is cut by LIMIT there. Two ways:

- up to ``RANK_LIMIT`` matching messages: every match is ranked (bm25 on SQLite, ts_rank on
  PostgreSQL; a word in the subject counts most) and the best ticket comes first;
- more: ranking them all would cost seconds (a word half the mail contains), and the order
  would mean little, so the tickets come newest first, unscored. When more than one message
  in ``PROBE_SHARE`` matches, the tickets are walked newest first and each is looked up in
  the index by key, so the page is found after a page's worth of lookups ("probe");
  otherwise the ids of the matching messages are read from the index once (cheap: no rows,
  no ranking) and the filtered tickets' messages are walked newest first until a page of
  tickets has one of them ("walk"). A walk that passes ``WALK_ROWS`` messages without
  filling the page (a narrow filter, the matches in old mail) leaves the page to one query
  that joins every match to its ticket ("set"). The page's snippets are found in its own
  text.

One index lookup by key costs about as much as reading a few hundred ids from a list of
matches (the expression is set up anew for each), which is where the share comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import peewee

from eddymail.db import searchindex
from eddymail.db.connection import database_proxy
from eddymail.db.models import Message
from eddymail.errors import ValidationError
from eddymail.searchtext import MAX_TERMS, Term, fold, operators_in, parse_query, words
from eddymail.services.tickets.results import SearchMatch

RANK_LIMIT = 5_000  # matching messages; beyond, newest first (see the module docstring)
PROBE_SHARE = 4  # probe when more than one message in this many matches
WALK_ROWS = 50_000  # messages a walk reads before the set query takes over
SNIPPET_CHARS = 160
SNIPPET_LEAD = 20  # characters shown before the first match (narrow screens show little)
SCAN_CHARS = 300_000  # the snippet is looked for in this much of a field (the index: less)


@dataclass(frozen=True)
class RebuildResult:
    """What ``search rebuild`` indexed."""

    messages: int


def index_message(message: Message) -> None:
    """Put a new ticket message into the index (in the caller's transaction)."""
    if message.ticket_id is None:
        return
    text = searchindex.message_text(
        direction=message.direction, automatic=message.automatic, subject=message.subject,
        from_address=message.from_address, from_name=message.from_name,
        author_name=message.author_name, to=message.to, cc=message.cc, bcc=message.bcc,
        body_text=message.body_text)
    if text is not None:
        searchindex.add(database_proxy, message.id, text)


def query_terms(text: str) -> list[Term]:
    """The terms of a search. Raises ``ValidationError`` for a query with no word in it."""
    operators = operators_in(text)
    if operators:
        raise ValidationError(
            f"Search has no operators ({', '.join(operators)} in {text!r}): every word must "
            "match.", hint='Search once per alternative; quote a word to find it as written '
            '("or"); a word\'s beginning matches with * (print*).')
    terms = parse_query(text)
    if not terms:
        raise ValidationError(f"Nothing to search for in {text!r}: give at least one word.")
    if len(terms) > MAX_TERMS:
        raise ValidationError(f"Too many words to search for (at most {MAX_TERMS}).")
    return terms


RANK, WALK, SET, PROBE = "rank", "walk", "set", "probe"


@dataclass(frozen=True)
class Plan:
    """How to find a page of matches (module docstring), and for ``WALK`` what matches."""

    how: str  # RANK, WALK or PROBE (a WALK may end as a SET)
    messages: frozenset[int] = frozenset()  # WALK: the ids of the matching messages


def plan(terms: list[Term]) -> Plan:
    """Choose the way to find a page from how many messages match (read from the index,
    at most as many as decide it)."""
    newest = Message.select(peewee.fn.MAX(Message.id)).scalar() or 1  # ~ how many messages
    # A prefix costs more per lookup (it is expanded each time): probe only for more matches.
    share = PROBE_SHARE // 2 if any(term.prefix for term in terms) else PROBE_SHARE
    probe_above = newest // share if share > 0 else None
    # Counted first (in the engine, up to where it decides): a word most mail has is
    # probed, and reading its ids would cost more than the probe.
    count = searchindex.count_matches(
        database_proxy, terms, most=None if probe_above is None else probe_above + 1)
    if count <= RANK_LIMIT:
        return Plan(RANK)
    if probe_above is not None and count > probe_above:
        return Plan(PROBE)
    return Plan(WALK, frozenset(searchindex.matching_messages(database_proxy, terms)))


def strategy(terms: list[Term]) -> str:
    """How to find a page of matches: ``RANK``, ``WALK`` or ``PROBE`` (module docstring)."""
    return plan(terms).how


def first_tickets(walk: peewee.Select, messages: frozenset[int], wanted: int
                  ) -> dict[int, int] | None:
    """The first ``wanted`` tickets (fewer when there are no more) that have one of
    ``messages``, each with the newest of its ones, in the order of ``walk``: (ticket id,
    message id) of the filtered tickets' messages, in list order. None when that takes more
    than ``WALK_ROWS`` rows."""
    found: dict[int, int] = {}
    cursor = database_proxy.execute(walk.limit(WALK_ROWS + 1))
    read = 0
    try:
        while rows := cursor.fetchmany(1000):
            read += len(rows)
            for ticket_id, message_id in rows:
                # A ticket's messages come one after another: once the page is full, the
                # last ticket's other messages are still read, then the walk stops.
                if len(found) >= wanted and ticket_id not in found:
                    return found
                if message_id in messages:
                    found[ticket_id] = max(message_id, found.get(ticket_id, 0))
    finally:
        cursor.close()
    return None if read > WALK_ROWS else found


def best_matches(terms: list[Term]) -> peewee.Select:
    """Per matching ticket its best message: columns ``ticket_id``, ``message_id``, ``score``."""
    return searchindex.best_matches(database_proxy, terms)


def has_match(terms: list[Term], ticket_id: peewee.Field, how: str) -> peewee.Node:
    """A condition on a ticket query: the ticket has a matching message (``SET``/``PROBE``)."""
    if how == PROBE:
        return searchindex.ticket_has_match(database_proxy, terms, ticket_id)
    return ticket_id.in_(searchindex.matching_tickets(database_proxy, terms))


_SHOWN = (Message.id, Message.ticket, Message.subject, Message.from_address, Message.from_name,
          Message.author_name, Message.to, Message.cc, Message.body_text)


def describe_matches(terms: list[Term], scored: dict[int, float | None]
                     ) -> dict[int, SearchMatch]:
    """``SearchMatch`` by message id for the best messages of one page (scored: ranked)."""
    found = {}
    if scored:
        for message in Message.select(*_SHOWN).where(Message.id.in_(list(scored))):
            field, snippet, highlights = _snippet(message, terms)
            found[message.id] = SearchMatch(message.id, scored[message.id], field, snippet,
                                            highlights)
    return found


def describe_page(terms: list[Term], ticket_ids: list[int]) -> dict[int, SearchMatch]:
    """``SearchMatch`` by ticket id for a page of unranked matches: each ticket's newest
    message that has one of the words (found here, in the page's text, not in the index)."""
    found: dict[int, SearchMatch] = {}
    if not ticket_ids:
        return found
    for message in (Message.select(*_SHOWN).where(Message.ticket.in_(ticket_ids))
                    .order_by(Message.id.desc())):
        if message.ticket_id is None or message.ticket_id in found:
            continue
        field, snippet, highlights = _snippet(message, terms)
        if highlights:
            found[message.ticket_id] = SearchMatch(message.id, None, field, snippet,
                                                   highlights)
    return found


def rebuild(progress: Callable[[int, int], None] = lambda done, total: None) -> RebuildResult:
    """Empty the index and index every ticket message again, in batches.

    Mail that arrives meanwhile is indexed by its own ingest (its message is newer than the
    last one this rebuild takes), so a fetch may run during a rebuild.
    """
    with database_proxy.atomic():
        searchindex.clear(database_proxy)
        last = Message.select(peewee.fn.MAX(Message.id)).scalar() or 0
    total = Message.select().where(Message.ticket.is_null(False), Message.id <= last).count()
    progress(0, total)
    done = searchindex.fill(database_proxy, until=last,
                            progress=lambda indexed: progress(indexed, total))
    return RebuildResult(messages=done)


def _snippet(message: Message, terms: list[Term]) -> tuple[str, str, list[tuple[int, int]]]:
    """The first place in the body, else the subject, else the people, where a word matches."""
    exact = {word for term in terms for word in (term.words[:-1] if term.prefix else term.words)}
    prefixes = tuple(term.words[-1] for term in terms if term.prefix)
    people = ", ".join(
        f"{entry.get('name')} <{entry.get('address')}>" if entry.get("name")
        else str(entry.get("address", ""))
        for entry in [{"address": message.from_address, "name": message.from_name},
                      *(message.to or []), *(message.cc or [])] if entry.get("address"))
    if message.author_name:
        people = f"{message.author_name}, {people}" if people else message.author_name
    wanted = (*exact, *prefixes)
    for field, text in (("body", message.body_text), ("subject", message.subject),
                        ("people", people)):
        flat = " ".join(text[:SCAN_CHARS].split())
        # A folded word is a piece of the folded text: a field without any is not split.
        folded = fold(flat)
        if not any(word in folded for word in wanted):
            continue
        spans: list[tuple[int, int]] = []
        for start, end, word in words(flat):
            if spans and start > spans[0][0] + SNIPPET_CHARS:
                break  # beyond any window around the first match (``_window``)
            if word in exact or word.startswith(prefixes):
                spans.append((start, end))
        if spans:
            return (field, *_window(flat, spans))
    flat = " ".join(message.body_text[:SCAN_CHARS].split())
    return "body", *_window(flat, [])


def _window(flat: str, spans: list[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """About ``SNIPPET_CHARS`` of ``flat`` around its first span, cut at spaces."""
    start = 0
    if spans and spans[0][0] > SNIPPET_LEAD:
        start = flat.find(" ", spans[0][0] - SNIPPET_LEAD, spans[0][0])
        start = spans[0][0] if start < 0 else start + 1
    end = len(flat)
    if end - start > SNIPPET_CHARS:
        cut = flat.rfind(" ", start, start + SNIPPET_CHARS)
        end = cut if cut > max(start, spans[0][1] if spans else start) else start + SNIPPET_CHARS
    lead = "…" if start else ""
    text = lead + flat[start:end] + ("…" if end < len(flat) else "")
    shift = len(lead) - start
    return text, [(a + shift, b + shift) for a, b in spans if a >= start and b <= end]
