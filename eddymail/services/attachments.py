"""Attachments: listing them and saving one to disk, safely.

The name a file came with is hostile input. Saving never uses it as a path: it is reduced to
one safe file name (no separators, no ``..``, no control characters, no reserved device
names), written only inside the chosen folder, never over an existing file, and never with
an executable bit.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from eddymail.errors import NotFoundError, ValidationError
from eddymail.models import Attachment, Message
from eddymail.services.tickets import AttachmentInfo, find_ticket

MAX_NAME = 150
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class SavedAttachment:
    """Where an attachment was written."""

    id: int
    path: str
    size: int


def list_attachments(ticket_id: int) -> list[AttachmentInfo]:
    """Every attachment of a ticket's thread, oldest first (never the bytes)."""
    ticket = find_ticket(ticket_id)
    query = (Attachment.select(Attachment.id, Attachment.filename, Attachment.content_type,
                               Attachment.size, Attachment.inline)
             .join(Message).where(Message.ticket == ticket).order_by(Attachment.id))
    return [AttachmentInfo(a.id, a.filename, a.content_type, a.size, a.inline) for a in query]


def safe_file_name(name: str, attachment_id: int) -> str:
    """One harmless file name made from an untrusted one."""
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in '<>:"|?*')
    name = name.strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        extension = extension[:15] if dot else ""
        name = (stem if dot else name)[: MAX_NAME - len(extension) - 1].rstrip(" .")
        name = f"{name}.{extension}" if extension else name
    if not name or _RESERVED.match(name):
        name = f"attachment-{attachment_id}" + (f"-{name}" if name else "")
    return name


def save_attachment(attachment_id: int, folder: Path) -> SavedAttachment:
    """Write one attachment into ``folder`` under a safe, new name; returns where."""
    attachment = Attachment.get_or_none(Attachment.id == attachment_id)
    if attachment is None:
        raise NotFoundError(f"No attachment #{attachment_id}: see eddymail ticket attachments ID.")
    folder = folder.expanduser()
    if not folder.is_dir():
        raise ValidationError(f"{folder} is not a folder.")
    name = safe_file_name(attachment.filename, attachment.id)
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    for number in range(1000):
        candidate = name if number == 0 else (
            f"{stem} ({number}).{extension}" if extension else f"{stem} ({number})")
        path = folder / candidate
        try:
            # O_EXCL: never replace a file; O_NOFOLLOW: never write through a planted link;
            # 0o644 minus the umask: never executable.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                 | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(bytes(attachment.data))
        return SavedAttachment(attachment.id, str(path), attachment.size)
    raise ValidationError(f"Too many files named like {name} in {folder}.")
