"""Issue 11, class 9 (the files): a store of other people's mail is private.

The database folder eddymail creates is 0700; the database file, its WAL and shared-memory
files, saved attachments and exported quarantine are 0600, whatever the umask lets through.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial import hostile

UMASKS = [0o000, 0o002, 0o022]


@pytest.fixture(params=UMASKS, ids=[oct(u) for u in UMASKS])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("nesting", ["folder", "nested/folders"])
def test_a_new_database_is_private(eddymail, monkeypatch, tmp_path, umask, nesting):
    database = tmp_path / nesting / "eddymail.db"
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{database}")
    eddymail("department", "add", "Support")
    eddymail("ingest", "--department", "Support",
             input=hostile.mixed(hostile.text_part("hello")).decode())
    assert mode(database.parent) == 0o700
    files = [database, *database.parent.glob("eddymail.db-*")]
    assert {path.name for path in files} >= {"eddymail.db"}
    assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_the_default_database_location_is_private(eddymail, monkeypatch, tmp_path, umask):
    monkeypatch.delenv("EDDYMAIL_DATABASE_URL")
    eddymail("department", "add", "Support")
    (database,) = (tmp_path / "home").rglob("*.db")
    assert mode(database) == 0o600 and mode(database.parent) == 0o700


def test_saved_attachments_are_private(eddymail, support, tmp_path, umask):
    raw = hostile.mixed(hostile.text_part("See attachments."),
                        hostile.attachment_part('attachment; filename="report.pdf"', b"%PDF-1"),
                        hostile.attachment_part('attachment; filename="run.sh"', b"#!/bin/sh"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hostile.ingest(eddymail, inbox, raw)
    target = tmp_path / "downloads"
    target.mkdir()
    for item in eddymail.json("ticket", "attachments", "1")["attachments"]:
        saved = eddymail.json("ticket", "attachment", "save", str(item["id"]), "--to",
                              str(target))["saved"]
        assert mode(Path(saved["path"])) == 0o600, saved
