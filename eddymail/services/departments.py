"""Departments: teams that own tickets and answer from one outgoing channel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee

from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, Department, Ticket
from eddymail.errors import ConflictError, NotFoundError, ValidationError
from eddymail.services import naming


@dataclass(frozen=True)
class DepartmentInfo:
    """A department as shown by ``department list|show``."""

    id: int
    name: str
    outgoing_channel: str | None
    outgoing_address: str | None
    channels: list[str]
    open_tickets: int
    tickets: int
    created_at: datetime


def find_department(name: str) -> Department:
    """The department called ``name`` (case-insensitive). Raises ``NotFoundError``."""
    department = _by_name(name)
    if department is None:
        raise NotFoundError(
            f"No department named '{naming.printable(name)}': see eddymail department list."
        )
    return department


def add_department(name: str) -> DepartmentInfo:
    """Create a department. Raises ``ConflictError`` when the name is taken."""
    name = naming.department_name(name)
    with database_proxy.atomic():
        _ensure_free(name)
        department = Department.create(name=name)
    return describe(department)


def list_departments() -> list[DepartmentInfo]:
    """All departments by name."""
    return [describe(d) for d in Department.select().order_by(Department.name)]


def show_department(name: str) -> DepartmentInfo:
    """One department."""
    return describe(find_department(name))


def edit_department(
    name: str, *, new_name: str | None = None, outgoing_channel: str | None = None
) -> DepartmentInfo:
    """Rename a department and/or choose its outgoing channel (``""`` clears it)."""
    with database_proxy.atomic():
        department = find_department(name)
        if new_name is not None:
            cleaned = naming.department_name(new_name)
            if cleaned.lower() != department.name.lower():
                _ensure_free(cleaned)
            department.name = cleaned
        if outgoing_channel is not None:
            department.outgoing_channel = _outgoing(department, outgoing_channel)
        department.save()
    return describe(department)


def remove_department(name: str) -> None:
    """Delete a department that has no channels and no tickets left."""
    with database_proxy.atomic():
        department = find_department(name)
        channels = [c.name for c in _channels_of(department)]
        if channels:
            raise ConflictError(
                f"Department '{department.name}' still has channels ({', '.join(channels)}): "
                "move them with eddymail channel edit NAME --department OTHER, or remove them."
            )
        tickets = Ticket.select().where(Ticket.department == department).count()
        if tickets:
            raise ConflictError(
                f"Department '{department.name}' still has {tickets} ticket(s): move them to "
                "another department with eddymail ticket move ID DEPARTMENT first."
            )
        department.delete_instance()


def _outgoing(department: Department, channel_name: str) -> Channel | None:
    if channel_name.strip() in ("", "none"):
        return None
    channel = Channel.get_or_none(Channel.name == channel_name.strip())
    if channel is None:
        raise NotFoundError(f"No channel named '{channel_name}': see eddymail channel list.")
    if not channel.smtp_host:
        raise ValidationError(
            f"Channel '{channel.name}' has no outgoing (SMTP) settings, so replies cannot be "
            f"sent from it: eddymail channel edit {channel.name} --smtp-host HOST."
        )
    return channel


def _by_name(name: str) -> Department | None:
    # Compared in Python: SQLite's LOWER() folds ASCII only, and names like "Отдел продаж"
    # must match whatever case they are typed in. Departments are few.
    wanted = " ".join(name.split()).casefold()
    for department in Department.select():
        if department.name.casefold() == wanted:
            return department
    return None


def _ensure_free(name: str) -> None:
    existing = _by_name(name)
    if existing is not None:
        raise ConflictError(f"A department named '{existing.name}' already exists.")


def describe(department: Department) -> DepartmentInfo:
    """The plain view of a department row."""
    outgoing = (
        Channel.get_or_none(Channel.id == department.outgoing_channel_id)
        if department.outgoing_channel_id
        else None
    )
    counts = (
        Ticket.select(
            peewee.fn.COUNT(Ticket.id),
            peewee.fn.SUM(peewee.Case(None, [(Ticket.status != "closed", 1)], 0)),
        )
        .where(Ticket.department == department)
        .tuples()
        .first()
    )
    total, open_count = counts if counts else (0, 0)
    return DepartmentInfo(
        id=department.id,
        name=department.name,
        outgoing_channel=outgoing.name if outgoing else None,
        outgoing_address=outgoing.email if outgoing else None,
        channels=[c.name for c in _channels_of(department).order_by(Channel.name)],
        open_tickets=int(open_count or 0),
        tickets=int(total or 0),
        created_at=department.created_at,
    )


def _channels_of(department: Department) -> peewee.ModelSelect[Channel]:
    # The ``channels`` backref, spelt out: peewee adds backrefs at run time, unseen by types.
    return Channel.select().where(Channel.department == department)
