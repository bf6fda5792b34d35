"""Attachments: listing them and saving one to disk, safely.

The name a file came with is hostile input. Saving never uses it as a path: it is reduced to
one safe file name (no separators, no ``..``, no control characters, no reserved device
names), written only inside the chosen folder, never over an existing file, and never with
an executable bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from eddymail.db.models import Attachment, Message
from eddymail.errors import NotFoundError, ValidationError
from eddymail.mail.message.filenames import safe_filename
from eddymail.services.tickets.queries import AttachmentInfo, find_ticket

MAX_SAVE_ATTEMPTS = 1000


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
    return [AttachmentInfo.of(a.id, a.filename, a.content_type, a.size, a.inline)
            for a in query]


#: Saved attachments are readable and writable by their owner only.
PRIVATE_FILE_MODE = 0o600


def safe_file_name(name: str, attachment_id: int,
                   content_type: str = "application/octet-stream") -> str:
    """One harmless file name made from an untrusted one.

    The same rules as the names the parser stores (``mail.filenames.safe_filename``): no
    path parts, controls, bidi characters, ``..`` or reserved device names, at most 240
    UTF-8 bytes, so the numbered variants below stay within the 255 bytes file systems allow.
    Names stored before those rules, and names of files staff attached, are cleaned here
    again.
    """
    return safe_filename(name, attachment_id, content_type)


def save_attachment(attachment_id: int, folder: Path) -> SavedAttachment:
    """Write one attachment into ``folder`` under a safe, new name; returns where.

    The name is one path component made by ``safe_file_name``, opened relative to a handle
    on the folder, so nothing but that folder is ever written to, even if the folder's
    path is swapped for a link meanwhile. An existing file (or a link, even a dangling one)
    with the name is never replaced: " (1)", " (2)"... are tried instead.
    """
    attachment = Attachment.get_or_none(Attachment.id == attachment_id)
    if attachment is None:
        raise NotFoundError(f"No attachment #{attachment_id}: see eddymail ticket attachments ID.")
    folder = folder.expanduser()
    if not folder.is_dir():
        raise ValidationError(f"{folder} is not a folder.")
    name = safe_file_name(attachment.filename, attachment.id, attachment.content_type)
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:
        stem, extension = name, ""
    try:
        folder_handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise ValidationError(f"Cannot open the folder {folder}: {error.strerror}.") from None
    try:
        for number in range(MAX_SAVE_ATTEMPTS):
            candidate = name if number == 0 else (
                f"{stem} ({number}).{extension}" if extension else f"{stem} ({number})")
            try:
                # O_EXCL: never replace a file, and fail on any link with the name (POSIX);
                # O_NOFOLLOW as well, for systems that would follow one; 0o600: other
                # people's mail is for the one who saved it, and never executable,
                # whatever the name or the umask say.
                descriptor = os.open(
                    candidate,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                    PRIVATE_FILE_MODE,
                    dir_fd=folder_handle,
                )
            except FileExistsError:
                continue
            except OSError as error:
                raise ValidationError(
                    f"Cannot write {candidate} in {folder}: {error.strerror}.") from None
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(bytes(attachment.data))
            return SavedAttachment(attachment.id, str(folder / candidate), attachment.size)
    finally:
        os.close(folder_handle)
    raise ValidationError(f"Too many files named like {name} in {folder}.")
