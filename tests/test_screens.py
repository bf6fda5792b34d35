"""What people see: `ticket list` at 80 and 200 columns, `channel presets` as a list, and
`ticket show` through the pager on a terminal (a real pseudo-terminal), never when piped."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.mailfactory import make_mail

LONG_SUBJECT = "Invoice 2024-117 was charged twice and the refund has not arrived yet"
LONG_SENDER = "Konstantin Konstantinopolsky <konstantin.konstantinopolsky@very-long-domain.example>"


def deliver(eddymail, tmp_path: Path, subject: str, body: str = "Hello.\n", **headers) -> int:
    raw = make_mail(subject, body=body, **headers)
    path = tmp_path / f"{hashlib.sha256(raw).hexdigest()[:16]}.eml"
    path.write_bytes(raw)
    return eddymail.json("ingest", "--department", "Support", str(path))["messages"][0][
        "ticket_id"]


def listing(eddymail, monkeypatch, columns: int, *options: str) -> list[str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    return eddymail("ticket", "list", *options).stdout.splitlines()


def test_ticket_list_gives_subject_and_requester_the_room(eddymail, support, tmp_path,
                                                          monkeypatch):
    deliver(eddymail, tmp_path, LONG_SUBJECT, sender=LONG_SENDER)
    number = deliver(eddymail, tmp_path, "Short one", sender="bob@b.example")
    narrow = listing(eddymail, monkeypatch, 80)
    assert all(len(line) <= 80 for line in narrow)
    header, _, first, second = narrow
    assert header.split() == ["#", "Status", "Age", "Subject", "Requester"]
    # Number, status and age are whole; the subject keeps most of its words.
    assert first.startswith(f"{number}*") and " open " in first and " now " in first
    assert "Short one" in first and "bob@b.example" in first
    assert "Invoice 2024-117 was charged" in second
    assert "konstantin.konstantin" in second
    wide = listing(eddymail, monkeypatch, 200)
    assert all(len(line) <= 200 for line in wide)
    assert wide[0].split() == ["#", "Status", "Age", "Subject", "Requester", "Department",
                               "Assignee"]
    assert LONG_SUBJECT in wide[3]
    assert "konstantin.konstantinopolsky@very-long-domain.example" in wide[3]


def test_the_age_column_is_short_and_relative(eddymail, support, tmp_path, monkeypatch,
                                              database_path):
    now = datetime.now(UTC).replace(tzinfo=None)
    ages = {"3h": timedelta(hours=3, minutes=5), "12m": timedelta(minutes=12, seconds=30),
            "5d": timedelta(days=5, hours=1)}
    ids = {label: deliver(eddymail, tmp_path, f"Age {label}") for label in ages}
    ids["old"] = deliver(eddymail, tmp_path, "Age old")
    ids["older"] = deliver(eddymail, tmp_path, "Age older")
    moments = {label: now - delta for label, delta in ages.items()}
    moments["old"] = now - timedelta(days=20)
    moments["older"] = now - timedelta(days=800)
    connection = sqlite3.connect(database_path)
    for label, moment in moments.items():
        connection.execute("UPDATE ticket SET last_activity_at = ? WHERE id = ?",
                           (moment.isoformat(sep=" "), ids[label]))
    connection.commit()
    connection.close()
    lines = listing(eddymail, monkeypatch, 80)[2:]
    age = {}  # subject "Age X" -> what the Age column says (between status and subject)
    for line in lines:
        words = line.split()
        subject_at = words.index("Age")
        age[words[subject_at + 1]] = " ".join(words[2:subject_at])
    assert (age["12m"], age["3h"], age["5d"]) == ("12m", "3h", "5d")
    local = moments["old"].replace(tzinfo=UTC).astimezone()
    assert age["old"] == f"{local.day} {local:%b}"
    assert age["older"] == f"{moments['older'].replace(tzinfo=UTC).astimezone():%Y-%m}"


def test_ticket_list_json_is_complete(eddymail, support, tmp_path):
    deliver(eddymail, tmp_path, "Named", sender="Anna Petrova <anna@firm.example>")
    deliver(eddymail, tmp_path, "Unnamed", sender="bare@firm.example")
    tickets = {t["subject"]: t for t in eddymail.json("ticket", "list")["tickets"]}
    assert tickets["Named"]["requester"] == "anna@firm.example"
    assert tickets["Named"]["requester_name"] == "Anna Petrova"
    assert tickets["Unnamed"]["requester_name"] == ""
    show = eddymail.json("ticket", "show", str(tickets["Named"]["id"]))["ticket"]
    # The list reports what show reports for the same fields.
    for key in ("id", "subject", "status", "department", "requester", "requester_name",
                "assignee", "awaiting_reply", "created_at", "last_activity_at"):
        assert tickets["Named"][key] == show[key], key


def test_channel_presets_are_a_list_at_80_columns(eddymail, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    lines = eddymail("channel", "presets").stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    presets = eddymail.json("channel", "presets")["presets"]
    headings = [line for line in lines if line and not line.startswith(" ")]
    assert [line.split(" · ")[0] for line in headings] == [p["key"] for p in presets]
    assert "  IMAP  imap.gmail.com:993 ssl" in lines
    assert "  SMTP  smtp.gmail.com:465 ssl" in lines
    # The hint reads as a paragraph: whole lines of words, not a column of single words.
    hint = next(line for line in lines if line.startswith("  Gmail needs"))
    assert len(hint.split()) >= 8


# --- the pager --------------------------------------------------------------------------------


@pytest.fixture
def recording_pager(tmp_path: Path) -> tuple[str, Path]:
    """A $PAGER that writes what it is given to a file (and shows nothing)."""
    script = tmp_path / "pager.sh"
    record = tmp_path / "paged.txt"
    script.write_text('#!/bin/sh\ncat > "$1"\n')
    script.chmod(0o755)
    return f"{script} {record}", record


def on_terminal(args: list[str], environment: dict[str, str], rows: int = 24,
                columns: int = 80) -> str:
    """Run ``eddymail ARGS`` on a pseudo-terminal of this size (stdin, stdout, stderr), as a
    person at a terminal would; what it showed (the command must succeed)."""
    code, shown = run_on_terminal(args, environment, rows, columns)
    assert code == 0, shown
    return shown


def run_on_terminal(args: list[str], environment: dict[str, str], rows: int = 24,
                    columns: int = 80, answer: str | None = None) -> tuple[int, str]:
    """Like :func:`on_terminal`, typing ``answer`` (then Enter) at a ``[y/N]`` question if
    given; the exit code and what the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {**environment, "LINES": str(rows), "COLUMNS": str(columns),
                   "TERM": "xterm"}
    child = subprocess.Popen([sys.executable, "-m", "eddymail", *args], stdin=slave,
                             stdout=slave, stderr=slave, env=environment)
    os.close(slave)
    shown = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
        if answer is not None and b"[y/N]" in shown:
            os.write(master, answer.encode() + b"\r")  # Enter, as a person types it
            answer = None
    code = child.wait(timeout=120)  # a hang guard, not a deadline
    os.close(master)
    return code, shown.decode(errors="replace")


def test_a_long_ticket_opens_in_the_pager_on_a_terminal(eddymail, support, tmp_path,
                                                        recording_pager):
    pager, record = recording_pager
    body = "".join(f"Line {n} of a long story.\n" for n in range(60))
    ticket = deliver(eddymail, tmp_path, "Long story", body=body)
    shown = on_terminal(["ticket", "show", str(ticket)], {**os.environ, "PAGER": pager})
    paged = record.read_text()
    assert "Line 59 of a long story." in paged and "Long story" in paged
    assert "Line 59" not in shown  # the pager had it, not the terminal


def test_a_short_ticket_is_printed_without_the_pager(eddymail, support, tmp_path,
                                                     recording_pager):
    pager, record = recording_pager
    ticket = deliver(eddymail, tmp_path, "Short story", body="Just one line.\n")
    shown = on_terminal(["ticket", "show", str(ticket)], {**os.environ, "PAGER": pager})
    assert "Just one line." in shown and not record.exists()


def test_long_lines_count_as_the_screen_lines_they_take(eddymail, support, tmp_path,
                                                        recording_pager):
    pager, record = recording_pager
    body = "".join(("word " * 150) + "\n\n" for _ in range(4))  # 4 paragraphs of ~10 rows
    ticket = deliver(eddymail, tmp_path, "Wide story", body=body)
    on_terminal(["ticket", "show", str(ticket)], {**os.environ, "PAGER": pager})
    assert record.exists()


def test_piped_output_is_never_paged(eddymail, support, tmp_path, recording_pager,
                                     monkeypatch):
    pager, record = recording_pager
    body = "".join(f"Line {n}\n" for n in range(200))
    ticket = deliver(eddymail, tmp_path, "Long story", body=body)
    monkeypatch.setenv("PAGER", pager)
    assert "Line 199" in eddymail("ticket", "show", str(ticket)).stdout
    result = subprocess.run([sys.executable, "-m", "eddymail", "ticket", "show", str(ticket)],
                            capture_output=True, text=True, env={**os.environ, "LINES": "24"},
                            timeout=120, check=True)
    assert "Line 199" in result.stdout
    shown = on_terminal(["ticket", "show", str(ticket), "--json"],
                        {**os.environ, "PAGER": pager})
    assert "Line 199" in shown
    assert not record.exists()


def test_a_missing_pager_falls_back_to_printing(eddymail, support, tmp_path):
    body = "".join(f"Line {n}\n" for n in range(80))
    ticket = deliver(eddymail, tmp_path, "Long story", body=body)
    shown = on_terminal(["ticket", "show", str(ticket)],
                        {**os.environ, "PAGER": str(tmp_path / "no-such-pager")})
    assert "Line 79" in shown
