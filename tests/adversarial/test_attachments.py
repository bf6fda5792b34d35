"""Attachment names that try to escape, and saving attachments to disk.

A sender chooses the name: ``../../x``, absolute paths, RFC 2231-encoded ``..%2F``, NUL and
control characters, 5,000 characters, Windows device names, names that differ only by
case. Storing an attachment must never use its name as a path, and ``eddymail ticket
attachment save ID --to DIR`` must write only inside DIR, never overwrite anything, never
make an executable file and never follow a link planted in DIR.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from tests.adversarial import hostile

# (Content-Disposition as sent, what the file holds)
HOSTILE_NAMES = [
    ('attachment; filename="../../x.txt"', b"dot-dot"),
    ('attachment; filename="/etc/passwd"', b"absolute"),
    ('attachment; filename="C:\\\\Windows\\\\System32\\\\evil.dll"', b"windows-absolute"),
    ("attachment; filename*=utf-8''..%2F..%2F..%2Ftmp%2Fescaped.sh", b"#!/bin/sh\necho pwned\n"),
    ("attachment; filename*=utf-8''a%00b.txt", b"nul"),
    ("attachment; filename*=utf-8''%1B%5D0%3Bpwned%07%0D%0Atitle.txt", b"controls"),
    ('attachment; filename="' + "A" * 5000 + '.pdf"', b"long"),
    ('attachment; filename="CON"', b"con"),
    ('attachment; filename="NUL.txt"', b"nul-device"),
    ('attachment; filename="aux"', b"aux"),
    ('attachment; filename="Report.PDF"', b"upper"),
    ('attachment; filename="report.pdf"', b"lower"),
    ('attachment; filename=".."', b"only-dots"),
    ('attachment; filename="..\uff0f..\uff0fsecret"', b"lookalike-slashes"),
    ('attachment; filename="invoice\u202efdp.exe"', b"bidi"),
    ('attachment; filename="run.sh"', b"#!/bin/sh\necho hi\n"),
]
RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)$", re.IGNORECASE)


@pytest.fixture
def attachments(eddymail, support, tmp_path) -> list[dict]:
    """A ticket with one attachment per hostile name; their ``--json`` descriptions."""
    parts = [hostile.text_part("See attachments.")]
    parts += [hostile.attachment_part(disposition, data) for disposition, data in HOSTILE_NAMES]
    raw = hostile.mixed(*parts)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    assert hostile.ingest(eddymail, inbox, raw)[0]["status"] == "new_ticket"
    items = eddymail.json("ticket", "attachments", "1")["attachments"]
    assert len(items) == len(HOSTILE_NAMES)
    return items


def files_under(folder: Path) -> set[Path]:
    """Every file, link and folder below ``folder``."""
    return {path for path in folder.rglob("*")}


def save(eddymail, attachment_id: int, folder: Path) -> Path:
    """Save one attachment with the CLI; the path it says it wrote."""
    saved = eddymail.json("ticket", "attachment", "save", str(attachment_id), "--to",
                          str(folder))["saved"]
    return Path(saved["path"])


def test_stored_names_are_plain_file_names(attachments):
    for item in attachments:
        name = item["filename"]
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert name not in ("", ".", "..") and not name.startswith(".")
        assert not any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in name)
        assert not RESERVED.match(name.split(".", 1)[0].strip())
        assert len(name.encode("utf-8")) <= 240
    names = [item["filename"] for item in attachments]
    assert names[:4] == ["x.txt", "passwd", "evil.dll", "escaped.sh"]
    assert names[6].endswith(".pdf")
    assert names[7:10] == ["_CON", "_NUL.txt", "_aux"]
    assert names[12].startswith("attachment-")


def test_stored_names_show_where_controls_bidi_and_lookalike_slashes_were(attachments):
    # Dropping them silently made "ESC]0;pwned BEL" read as the harmless "]0;pwned" and
    # "invoice U+202E fdp.exe" as "invoicefdp.exe"; a "_" shows something was there.
    names = [item["filename"] for item in attachments]
    assert names[4] == "a_b.txt"
    assert names[5] == "_]0;pwned_ title.txt"
    assert names[13] == "_._secret"  # "..／..／secret": no slash, not even a look-alike
    assert names[14] == "invoice_fdp.exe"


def test_storage_never_uses_a_name_as_a_path(eddymail, support, tmp_path):
    before = files_under(tmp_path)
    parts = [hostile.attachment_part(disposition, data) for disposition, data in HOSTILE_NAMES]
    hostile.ingest(eddymail, tmp_path, hostile.mixed(*parts))
    created = files_under(tmp_path) - before
    # Only the message file written by the test helper and the database's own files.
    assert {path.suffix for path in created} <= {".eml", ".db", ".db-journal", ".db-wal",
                                                 ".db-shm"}
    assert not (Path("/tmp") / "escaped.sh").exists()


def test_saving_writes_only_inside_the_folder_with_the_right_bytes(eddymail, attachments,
                                                                   tmp_path):
    target = tmp_path / "downloads"
    target.mkdir()
    before = files_under(tmp_path)
    for item, (_, data) in zip(attachments, HOSTILE_NAMES, strict=True):
        path = save(eddymail, item["id"], target)
        assert path.parent.resolve() == target.resolve()
        assert path.read_bytes() == data
    created = files_under(tmp_path) - before
    assert created == set(target.iterdir())
    assert len(created) == len(HOSTILE_NAMES)


def test_saving_never_overwrites(eddymail, attachments, tmp_path):
    target = tmp_path / "downloads"
    target.mkdir()
    item = attachments[0]
    (target / item["filename"]).write_bytes(b"precious")
    first = save(eddymail, item["id"], target)
    second = save(eddymail, item["id"], target)
    assert (target / item["filename"]).read_bytes() == b"precious"
    assert first != second and first.read_bytes() == second.read_bytes() == b"dot-dot"
    assert sorted(path.name for path in target.iterdir()) == ["x (1).txt", "x (2).txt",
                                                               "x.txt"]


def test_names_that_differ_only_by_case_give_two_files(eddymail, attachments, tmp_path):
    target = tmp_path / "downloads"
    target.mkdir()
    upper, lower = attachments[10], attachments[11]
    first, second = save(eddymail, upper["id"], target), save(eddymail, lower["id"], target)
    assert first != second
    assert first.read_bytes() == b"upper" and second.read_bytes() == b"lower"
    assert len(list(target.iterdir())) == 2


def test_saved_files_are_never_executable(eddymail, attachments, tmp_path):
    target = tmp_path / "downloads"
    target.mkdir()
    previous = os.umask(0)
    try:
        paths = [save(eddymail, item["id"], target) for item in attachments]
    finally:
        os.umask(previous)
    for path in paths:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert stat.S_ISREG(path.lstat().st_mode)
        assert mode & 0o111 == 0, (path.name, oct(mode))
        assert mode & 0o022 == 0, (path.name, oct(mode))  # nor writable by others


@pytest.mark.parametrize("dangling", [False, True], ids=["to_a_file", "dangling"])
def test_a_link_planted_with_the_target_name_is_not_followed(dangling, eddymail, attachments,
                                                             tmp_path):
    target = tmp_path / "downloads"
    target.mkdir()
    outside = tmp_path / "outside" / "victim.txt"
    outside.parent.mkdir()
    if not dangling:
        outside.write_bytes(b"untouched")
    item = attachments[0]
    planted = target / item["filename"]
    planted.symlink_to(outside)
    path = save(eddymail, item["id"], target)
    assert path != planted and path.parent == target and not path.is_symlink()
    assert path.read_bytes() == b"dot-dot"
    assert planted.is_symlink() and os.readlink(planted) == str(outside)
    if dangling:
        assert not outside.exists()
    else:
        assert outside.read_bytes() == b"untouched"


def test_a_folder_that_is_not_there_is_a_clean_error(eddymail, attachments, tmp_path):
    result = eddymail("ticket", "attachment", "save", str(attachments[0]["id"]), "--to",
                      str(tmp_path / "missing"), code=None)
    assert result.exit_code != 0
    assert "is not a folder" in result.stderr and "Unexpected" not in result.stderr
