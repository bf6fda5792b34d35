"""Customers known by e-mail address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee

from eddymail.db import fastsql
from eddymail.db.models import Ticket, TicketParticipant, User, utcnow
from eddymail.errors import NotFoundError
from eddymail.mail.message.addresskeys import address_key
from eddymail.patterns import LazyPattern


@dataclass(frozen=True)
class UserInfo:
    """A customer as shown by ``user list|show``."""

    id: int
    email: str
    name: str
    created_at: datetime
    registered_by: str
    tickets: int


def find_user(email: str) -> User | None:
    """The user with this address (in any spelling, see ``address_key``), if any."""
    return User.get_or_none(User.email == address_key(email))


# Something shaped like an e-mail address inside a display name.
_ADDRESS_LIKE = LazyPattern(r"[^\s@<>()\[\]\"',;:]+@[^\s@<>()\[\]\"',;:]+")


def plausible_name(name: str, email: str) -> str:
    """``name`` as a customer's name, or "" when it names another address.

    ``"support@bank.example" <evil@x.example>`` is a display name built to be read instead
    of the address; adopted as the user's name it would speak for the sender in every
    listing and every letter that greets him.
    """
    own = address_key(email)
    for found in _ADDRESS_LIKE.findall(name):
        if address_key(found.strip(".")) != own:
            return ""
    return name


def get_or_create_user(email: str, name: str, *, registered_by: str = "email"
                       ) -> tuple[User, bool]:
    """The user for ``email``, created when unknown; True when created now.

    A name learnt later fills an empty one but never overwrites what is there: the From
    display name of any single mail is too easy to forge to rename a customer. A name that
    is (or holds) another address is never taken at all (see ``plausible_name``).
    """
    key = address_key(email)
    name = plausible_name(name, key)
    user = fastsql.first(User, email=key)
    if user is not None:
        if name and not user.name:
            user.name = name
            user.save()
        return user, False
    # Another host may be registering the same new address this very moment (two mails from
    # one new customer): the insert then waits for its commit and adds nothing.
    inserted = User.insert(email=key, name=name, created_at=utcnow(),
                           registered_by=registered_by).on_conflict_ignore().execute()
    user = fastsql.first(User, email=key)
    assert user is not None  # inserted now, or by the other host
    return user, bool(inserted)


def list_users(*, search: str | None = None, limit: int = 100) -> list[UserInfo]:
    """Users by address, optionally those whose address or name contains ``search``."""
    query = User.select().order_by(User.email).limit(limit)
    if search:
        query = query.where(User.email.contains(address_key(search))
                            | User.name.contains(search))
    return [describe(user) for user in query]


def show_user(email: str) -> UserInfo:
    """One user. Raises ``NotFoundError``."""
    user = find_user(email)
    if user is None:
        raise NotFoundError(f"No user with the address '{email}'.")
    return describe(user)


def describe(user: User) -> UserInfo:
    """The plain view of a user row."""
    tickets = (
        Ticket.select(peewee.fn.COUNT(Ticket.id)).where(Ticket.requester == user).scalar() or 0
    )
    return UserInfo(
        id=user.id, email=user.email, name=user.name, created_at=user.created_at,
        registered_by=user.registered_by, tickets=tickets,
    )


def participant_addresses(ticket: Ticket) -> set[str]:
    """Every address that takes part in a ticket: the requester and the Cc'd users."""
    addresses = {address_key(ticket.requester_address)} if ticket.requester_address else set()
    query = (
        User.select(User.email)
        .join(TicketParticipant)
        .where(TicketParticipant.ticket == ticket)
    )
    addresses.update(user.email for user in query)
    return addresses


def participant_list(ticket: Ticket) -> list[str]:
    """The Cc'd participants of a ticket (not the requester), in the order they joined."""
    query = (User.select(User.email).join(TicketParticipant)
             .where(TicketParticipant.ticket == ticket).order_by(TicketParticipant.id))
    requester = address_key(ticket.requester_address)
    return [user.email for user in query if user.email != requester]


def add_participants(ticket: Ticket, users: list[User]) -> None:
    """Record users as participants (Cc) of a ticket; the requester is not repeated."""
    for user in users:
        if user.id == ticket.requester_id:
            continue
        TicketParticipant.insert(ticket=ticket, user=user, role="cc").on_conflict_ignore().execute()
