"""The desk's tools through the real CLI: canned replies, priorities and tags, merging,
bulk changes and exports (replies go to the real SMTP test server)."""

from __future__ import annotations

import csv
import email
import hashlib
import io
import json
import mailbox
import os
import stat
import subprocess
import sys
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.mailfactory import make_mail

HELP = "help@example.test"


@pytest.fixture
def desk(eddymail, smtp_server, pki, tmp_path: Path):
    """Support with an outgoing-only mailbox on the test SMTP server. Its password comes
    from a command, so a child process (a command run on a terminal) can send too."""
    smtp_server.add_user(HELP, "secret")
    secret = tmp_path / "secret"
    secret.write_text("secret\n")
    eddymail("department", "add", "Support")
    eddymail("channel", "add", "out", "--department", "Support", "--email", HELP,
             "--protocol", "none", "--smtp-host", smtp_server.host, "--smtp-port",
             str(smtp_server.port), "--smtp-security", "starttls", "--ca-file",
             str(pki.ca_file), "--password-command", f"cat {secret}")
    return eddymail


def deliver(eddymail, tmp_path: Path, subject: str, body: str = "Hello.\n", **headers) -> int:
    """Ingest one mail (no notifications); its ticket number."""
    raw = make_mail(subject, body=body, **headers)
    path = tmp_path / f"{hashlib.sha256(raw).hexdigest()[:16]}.eml"
    path.write_bytes(raw)
    return eddymail.json("ingest", "--no-notify", "--department", "Support",
                         str(path))["messages"][0]["ticket_id"]


def letters(smtp_server, count: int) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(mail.data, policy=default_policy)
            for mail in smtp_server.wait_for(count)]


def text_of(letter: email.message.EmailMessage) -> str:
    return letter.get_content().replace("\r\n", "\n")


# --- canned replies ---------------------------------------------------------------------------


def test_snippets_are_added_listed_shown_edited_and_removed(desk):
    desk("snippet", "add", "refund-done", "-m", "Your refund is on its way.\n3-5 days.")
    desk("snippet", "add", "greeting", input="Thank you for writing.\n")
    listed = desk.json("snippet", "list")["snippets"]
    assert [s["name"] for s in listed] == ["greeting", "refund-done"]
    shown = desk.json("snippet", "show", "REFUND-DONE")["snippet"]
    assert shown["body"] == "Your refund is on its way.\n3-5 days.\n"
    desk("snippet", "edit", "greeting", "--rename", "hello")
    desk("snippet", "edit", "hello", "-m", "Hello there.")
    assert desk.json("snippet", "show", "hello")["snippet"]["body"] == "Hello there.\n"
    assert "Hello there." in desk("snippet", "list").stdout
    desk("snippet", "remove", "hello")
    assert [s["name"] for s in desk.json("snippet", "list")["snippets"]] == ["refund-done"]


@pytest.mark.parametrize(("args", "message", "code"), [
    (["snippet", "add", "refund-done", "-m", "again"], "exists already", 1),
    (["snippet", "add", "two words", "-m", "x"], "cannot be a snippet name", 2),
    (["snippet", "add", "\x1b[2J", "-m", "x"], "cannot be a snippet name", 2),
    (["snippet", "add", "empty", "-m", "  \n"], "empty", 2),
    (["snippet", "add", "nested", "-m", "/snippet refund-done"], "cannot insert", 2),
    (["snippet", "show", "nope"], "No snippet 'nope'", 1),
    (["snippet", "remove", "nope"], "No snippet 'nope'", 1),
])
def test_snippet_input_is_checked(desk, args, message, code):
    desk("snippet", "add", "refund-done", "-m", "Your refund is on its way.")
    result = desk(*args, code=code)
    assert message in result.stderr and "\x1b" not in result.stderr


def test_a_reply_made_of_snippets(desk, smtp_server, tmp_path):
    ticket = deliver(desk, tmp_path, "Refund?", "Where is my money?\n")
    desk("snippet", "add", "refund-done", "-m", "Your refund is on its way: 3-5 days.")
    desk("snippet", "add", "bye", "-m", "Anything else? Just answer this mail.")
    desk("ticket", "reply", str(ticket), "--snippet", "refund-done", "--snippet", "bye")
    desk("ticket", "reply", str(ticket), "-m", "Hello again.\n/snippet refund-done\nRegards")
    first, second = (text_of(letter) for letter in letters(smtp_server, 2))
    assert "Your refund is on its way: 3-5 days.\n\nAnything else?" in first
    assert "Hello again.\nYour refund is on its way: 3-5 days.\nRegards" in second
    assert "/snippet" not in first + second


def test_a_department_signs_with_its_own_text_through_the_reply_template(desk, smtp_server,
                                                                         tmp_path):
    # What the README advises for a department's own signature: the reply template picks it
    # by department; an agent's own signature still comes first.
    frame = tmp_path / "reply.txt"
    frame.write_text(
        'Subject: Re: [#{{ ticket.id }}] {{ ticket.subject or "(no subject)" }}\n\n'
        "Hello,\n\n{{ reply.body }}\n\n"
        "{% if agent.signature %}{{ agent.signature }}"
        '{% elif department.name == "Support" %}Example Ltd, customer support\n'
        "+1 555 0100, Mon-Fri 9-17{% else %}{{ department.name }}{% endif %}\n")
    desk("template", "edit", "reply", "--file", str(frame))
    ticket = deliver(desk, tmp_path, "Question")
    desk("agent", "add", "sam", "--name", "Sam Carter", "--email", "")
    desk("ticket", "reply", str(ticket), "-m", "An answer.")
    desk("agent", "edit", "sam", "--signature", "Sam\\nNight shift")
    desk("ticket", "reply", str(ticket), "-m", "Another.")
    first, second = (text_of(letter) for letter in letters(smtp_server, 2))
    assert first.endswith("An answer.\n\nExample Ltd, customer support\n"
                          "+1 555 0100, Mon-Fri 9-17\n")
    assert second.endswith("Another.\n\nSam\nNight shift\n")


def test_an_unknown_snippet_sends_nothing(desk, smtp_server, tmp_path):
    ticket = deliver(desk, tmp_path, "Refund?")
    for args in (["--snippet", "nope"], ["-m", "Hi\n/snippet nope\n"]):
        result = desk("ticket", "reply", str(ticket), *args, code=1)
        assert "No snippet 'nope'" in result.stderr
    assert desk.json("outbox", "list")["outbox"] == []
    assert [m["direction"] for m in desk.json("ticket", "show", str(ticket))["ticket"][
        "messages"]] == ["in"]


def test_a_snippet_line_in_the_editor_draft_expands(desk, smtp_server, tmp_path):
    """On a terminal the reply is written in $EDITOR; an unknown snippet reopens it."""
    from tests.test_screens import on_terminal

    ticket = deliver(desk, tmp_path, "Refund?")
    desk("snippet", "add", "refund-done", "-m", "Your refund is on its way.")
    editor = tmp_path / "editor.py"
    calls = tmp_path / "calls"
    editor.write_text(
        "import sys, pathlib\n"
        f"calls = pathlib.Path({str(calls)!r})\n"
        "calls.write_text(calls.read_text() + 'x' if calls.exists() else 'x')\n"
        "draft = pathlib.Path(sys.argv[1])\n"
        "text = draft.read_text()\n"
        "assert 'refund-done' in text  # the draft lists the snippets\n"
        "if '# Not sent: No snippet' in text:  # the second round: fix the name\n"
        "    draft.write_text(text.replace('no-such-snippet', 'refund-done', 1))\n"
        "else:\n"
        "    draft.write_text('Hello.\\n/snippet no-such-snippet\\n' + text)\n")
    environment = {**os.environ, "EDITOR": f"python3 {editor}", "VISUAL": ""}
    on_terminal(["ticket", "reply", str(ticket)], environment)
    assert calls.read_text() == "xx"  # once with the unknown name, once more after the error
    (letter,) = letters(smtp_server, 1)
    assert "Hello.\nYour refund is on its way." in text_of(letter)


# --- priorities and tags ----------------------------------------------------------------------


def test_priorities_and_tags_are_set_filtered_and_shown(desk, tmp_path):
    first = deliver(desk, tmp_path, "Server down")
    second = deliver(desk, tmp_path, "Printer")
    assert desk.json("ticket", "show", str(first))["ticket"]["priority"] == "normal"
    desk("ticket", "priority", str(first), "urgent")
    desk("ticket", "tag", str(first), "--add", "VIP", "--add", "billing")
    desk("ticket", "tag", str(second), "--add", "billing")
    shown = desk.json("ticket", "show", str(first))["ticket"]
    assert (shown["priority"], shown["tags"]) == ("urgent", ["billing", "vip"])
    listed = {t["id"]: t for t in desk.json("ticket", "list")["tickets"]}
    assert listed[first]["tags"] == ["billing", "vip"] and listed[second]["priority"] == "normal"
    ids = [t["id"] for t in desk.json("ticket", "list", "--priority", "urgent")["tickets"]]
    assert ids == [first]
    assert sorted(t["id"] for t in desk.json("ticket", "list", "--tag", "billing")["tickets"]) \
        == sorted([first, second])
    assert [t["id"] for t in desk.json("ticket", "list", "--tag", "billing", "--tag",
                                       "VIP")["tickets"]] == [first]
    desk("ticket", "tag", str(first), "--remove", "vip")
    assert desk.json("ticket", "show", str(first))["ticket"]["tags"] == ["billing"]
    screen = desk("ticket", "list").stdout
    assert "open !!" in screen and "#billing" in screen
    history = [(e["action"], e["detail"]) for e in
               desk.json("ticket", "show", str(first))["ticket"]["history"]]
    assert history == [("priority", {"from": "normal", "to": "urgent"}),
                       ("tag", {"added": ["vip", "billing"], "removed": []}),
                       ("tag", {"added": [], "removed": ["vip"]})]
    # Marks for staff only: no message in the thread, nothing mailed.
    assert [m["direction"] for m in desk.json("ticket", "show", str(first))["ticket"][
        "messages"]] == ["in"]


@pytest.mark.parametrize(("args", "message"), [
    (["ticket", "priority", "1", "asap"], "Unknown priority"),
    (["ticket", "tag", "1", "--add", "two words"], "cannot be a tag"),
    (["ticket", "tag", "1", "--add", "-"], "cannot be a tag"),
    (["ticket", "tag", "1"], "--add or --remove"),
    (["ticket", "list", "--priority", "asap"], "asap"),
])
def test_priority_and_tag_input_is_checked(desk, tmp_path, args, message):
    deliver(desk, tmp_path, "Anything")
    assert message in desk(*args, code=2).stderr


# --- merging ----------------------------------------------------------------------------------


def test_merge_moves_messages_people_tags_and_history(desk, smtp_server, tmp_path):
    first = deliver(desk, tmp_path, "Invoice wrong", "The invoice is wrong.\n",
                    sender="Anna <anna@customer.example>")
    second = deliver(desk, tmp_path, "Invoice, again", "Still wrong!\n",
                     sender="Boris <boris@customer.example>",
                     message_id="<second@customer.example>")
    desk("ticket", "tag", str(second), "--add", "billing")
    desk("ticket", "priority", str(second), "high")
    desk("ticket", "note", str(second), "-m", "Boris is Anna's boss.")
    assert "--yes" in desk("ticket", "merge", str(first), str(second), code=2).stderr
    result = desk.json("ticket", "merge", str(first), str(second), "--yes")["merge"]
    assert result == {"ticket_id": first, "merged": [second], "messages_moved": 2,
                      "status": "open"}
    merged = desk.json("ticket", "show", str(first))["ticket"]
    texts = [m["body_text"] for m in merged["messages"]]
    assert "Still wrong!" in texts and "Boris is Anna's boss.\n" in texts
    assert merged["participants"] == ["boris@customer.example"]
    assert (merged["tags"], merged["priority"], merged["merged_from"]) == (
        ["billing"], "high", [second])
    assert [e["action"] for e in merged["history"]] == ["tag", "priority", "note", "merge"]
    gone = desk.json("ticket", "show", str(second))["ticket"]
    assert (gone["status"], gone["merged_into"]) == ("closed", first)
    assert [e["action"] for e in gone["history"]] == ["merged"]
    # The search finds the merged text in the ticket it is in now.
    found = desk.json("ticket", "list", "--search", "still wrong")["tickets"]
    assert [t["id"] for t in found] == [first]
    # The old ticket takes no more work...
    for args in (["reply", str(second), "-m", "x"], ["note", str(second), "-m", "x"],
                 ["reopen", str(second)], ["merge", str(second), str(first), "--yes"]):
        assert f"merged into #{first}" in desk("ticket", *args, code=1).stderr
    # ...but its tag and Message-ID still thread into the merged ticket.
    followup = deliver(desk, tmp_path, f"Re: [#{second}] Invoice, again", "Any news?\n",
                       sender="Boris <boris@customer.example>")
    assert followup == first
    answer = deliver(desk, tmp_path, "Re: Invoice", "Me again.\n",
                     sender="Boris <boris@customer.example>",
                     in_reply_to="<second@customer.example>")
    assert answer == first
    # A stranger carrying the old tag still gets a ticket of his own.
    stranger = deliver(desk, tmp_path, f"Re: [#{second}] hello", sender="eve@evil.example")
    assert stranger not in (first, second)


def test_merge_refuses_nonsense(desk, tmp_path):
    first = deliver(desk, tmp_path, "One")
    assert "into itself" in desk("ticket", "merge", str(first), str(first), "--yes",
                                 code=2).stderr
    assert "No ticket #99" in desk("ticket", "merge", str(first), "99", "--yes", code=1).stderr


# --- bulk changes -----------------------------------------------------------------------------


def test_bulk_close_asks_then_changes_every_ticket(desk, tmp_path):
    spam = [deliver(desk, tmp_path, f"Casino bonus {n}", "Win big at the casino!\n",
                    sender=f"spam{n}@casino.example") for n in range(3)]
    real = deliver(desk, tmp_path, "Login fails", "I cannot log in.\n")
    refused = desk("ticket", "close", *map(str, spam[:2]), code=2)
    assert "Close 2 ticket(s)" in refused.stderr and "--yes" in refused.stderr
    assert "Close 3 ticket(s)" in desk("ticket", "close", "--search", "casino",
                                       code=2).stderr
    assert {t["status"] for t in desk.json("ticket", "list")["tickets"]} == {"open"}
    report = desk.json("ticket", "close", "--search", "casino", "--yes")
    assert (report["count"], report["changed"], report["failed"]) == (3, 3, 0)
    assert sorted(t["ticket_id"] for t in report["tickets"]) == sorted(spam)
    assert [t["id"] for t in desk.json("ticket", "list")["tickets"]] == [real]
    # A second run finds nothing active to close.
    assert desk.json("ticket", "close", "--search", "casino", "--yes")["count"] == 0
    # One number is still a plain one-ticket command.
    assert desk.json("ticket", "close", str(real))["ticket"]["status"] == "closed"
    history = desk.json("ticket", "show", str(spam[0]))["ticket"]["history"]
    assert [e["action"] for e in history] == ["close"]


def answer_on_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run ``eddymail ARGS`` on a pseudo-terminal, type ``answer`` at its [y/N] question;
    the exit code and what the terminal showed."""
    from tests.test_screens import run_on_terminal

    code, shown = run_on_terminal(args, dict(os.environ), answer=answer)
    assert "[y/N]" in shown, shown
    return code, shown


def test_bulk_close_at_a_terminal_shows_the_count_and_asks(desk, tmp_path):
    spam = [deliver(desk, tmp_path, f"Casino bonus {n}", "Win big!\n",
                    sender=f"spam{n}@casino.example") for n in range(3)]
    code, shown = answer_on_terminal(["ticket", "close", "--search", "casino"], "n")
    assert code == 1 and "Close 3 ticket(s): " in shown and "Aborted" in shown
    assert {t["status"] for t in desk.json("ticket", "list")["tickets"]} == {"open"}
    code, shown = answer_on_terminal(["ticket", "close", "--search", "casino"], "y")
    assert code == 0 and "3 of 3 ticket(s) done." in shown
    assert desk.json("ticket", "list")["tickets"] == []
    assert {desk.json("ticket", "show", str(n))["ticket"]["status"] for n in spam} == {
        "closed"}


def test_a_bulk_search_over_the_cap_is_refused_whole(desk, tmp_path, monkeypatch):
    from eddymail.services.tickets import bulk

    monkeypatch.setattr(bulk, "MAX_TICKETS", 2)  # 10,000 in real life
    for n in range(3):
        deliver(desk, tmp_path, f"Casino bonus {n}", sender=f"spam{n}@casino.example")
    refused = desk("ticket", "close", "--search", "casino", "--yes", code=2)
    assert "finds over 2 tickets: narrow it" in refused.stderr
    assert {t["status"] for t in desk.json("ticket", "list")["tickets"]} == {"open"}
    assert desk.json("ticket", "close", "--search", "casino bonus 1", "--yes")["changed"] == 1


def test_bulk_tag_and_assign_with_one_failure(desk, tmp_path):
    desk("agent", "add", "anna", "--name", "Anna Petrova")
    tickets = [deliver(desk, tmp_path, f"Order {n}", "Where is my order?\n") for n in range(3)]
    desk("ticket", "merge", str(tickets[0]), str(tickets[2]), "--yes")
    result = desk("ticket", "tag", *map(str, tickets), "--add", "orders", "--yes", "--json",
                  code=1)
    report = json.loads(result.stdout)
    assert (report["count"], report["changed"], report["failed"]) == (3, 2, 1)
    failed = [t for t in report["tickets"] if not t["ok"]]
    assert failed[0]["ticket_id"] == tickets[2] and "merged into" in failed[0]["error"]
    assert desk.json("ticket", "show", str(tickets[1]))["ticket"]["tags"] == ["orders"]
    assigned = desk.json("ticket", "assign", "--search", "order", "anna", "--yes")
    assert sorted(t["ticket_id"] for t in assigned["tickets"]) == sorted(tickets[:2])
    mine = desk.json("--as", "anna", "ticket", "list", "--mine")["tickets"]
    assert sorted(t["id"] for t in mine) == sorted(tickets[:2])
    desk("ticket", "priority", *map(str, tickets[:2]), "low", "--yes")
    assert {t["priority"] for t in desk.json("ticket", "list")["tickets"]} == {"low"}


# --- export -----------------------------------------------------------------------------------

HOSTILE_SUBJECTS = ["=HYPERLINK(\"http://evil.example\",\"click\")", "+1+1", "-2+3",
                    "@SUM(A1:A2)", "\t=1+1", "  =cmd|' /C calc'!A0", "Plain, with \"quotes\""]


def test_csv_export_keeps_formulas_as_text(desk, tmp_path):
    for subject in HOSTILE_SUBJECTS:
        deliver(desk, tmp_path, subject, sender=f"=evil <x{len(subject)}@evil.example>")
    result = desk("ticket", "export", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == len(HOSTILE_SUBJECTS)
    for row in rows:
        for column in ("subject", "requester_name"):
            cell = row[column]
            assert not cell.lstrip().startswith(("=", "+", "-", "@")), cell
            assert not cell.startswith(("\t", "\r")), cell
    subjects = {row["subject"] for row in rows}
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in subjects
    assert "Plain, with \"quotes\"" in subjects  # ordinary text is left alone
    assert {row["requester_name"] for row in rows} == {"'=evil"}


def test_mbox_export_cannot_be_split_by_a_forged_from_line(desk, smtp_server, tmp_path):
    forged = ("Hello.\n\nFrom attacker@evil.example Thu Jan  1 00:00:00 2026\n"
              "Subject: forged\n\nI am a separate message.\n>From quoted already\n")
    ticket = deliver(desk, tmp_path, "Forgery", forged)
    desk("ticket", "note", str(ticket), "-m", "Internal: never exported as mail.")
    desk("ticket", "reply", str(ticket), "-m", "We got it.")
    letters(smtp_server, 1)
    target = tmp_path / "out.mbox"
    desk("ticket", "export", str(ticket), "--format", "mbox", "-o", str(target))
    box = mailbox.mbox(str(target))
    messages = list(box)
    assert [m["X-Eddymail-Ticket"] for m in messages] == [str(ticket)] * 2
    assert messages[0]["Subject"] == "Forgery" and "Re: [#" in messages[1]["Subject"]
    raw = target.read_bytes()
    assert b"\n>From attacker@evil.example" in raw and b"\n>>From quoted already" in raw
    assert b"Internal: never exported" not in raw
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_json_export_to_a_new_file_only(desk, tmp_path):
    first = deliver(desk, tmp_path, "First", "Body \x1b[2J with an escape.\n")
    deliver(desk, tmp_path, "Second")
    target = tmp_path / "tickets.json"
    desk("ticket", "export", "-o", str(target))
    document = json.loads(target.read_text())
    assert sorted(t["id"] for t in document["tickets"]) == [first, first + 1]
    assert "\x1b" not in target.read_text()
    assert document["tickets"][0]["messages"][0]["body_text"]
    before = target.read_bytes()
    assert "exists already" in desk("ticket", "export", "-o", str(target), code=2).stderr
    assert target.read_bytes() == before
    only = json.loads(desk("ticket", "export", str(first)).stdout)
    assert [t["id"] for t in only["tickets"]] == [first]
    assert "\\u001b[2J" in desk("ticket", "export", str(first)).stdout


def test_export_tells_a_script_what_it_wrote(desk, tmp_path):
    deliver(desk, tmp_path, "One", "First.\n")
    deliver(desk, tmp_path, "Two", "Second.\n")
    target = tmp_path / "tickets.csv"
    report = desk.json("ticket", "export", "--format", "csv", "-o", str(target))
    assert report == {"export": {"file": str(target), "format": "csv", "tickets": 2,
                                 "messages": 2}}
    assert len(list(csv.DictReader(io.StringIO(target.read_text())))) == 2
    # Without a file, stdout would be CSV where a JSON document was promised.
    refused = desk("ticket", "export", "--format", "mbox", "--json", code=2)
    assert "needs -o FILE" in refused.stderr and refused.stdout == ""


def test_an_export_piped_into_head_ends_quietly(desk, tmp_path):
    # More than a pipe holds, so the writer is still writing when the reader goes away.
    for number in range(3):
        deliver(desk, tmp_path, f"Long {number}", "A long line of text.\n" * 4000)
    child = subprocess.Popen([sys.executable, "-m", "eddymail", "ticket", "export"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline() == b"{\n"
    child.stdout.close()  # `| head -1`
    stderr = child.stderr.read().decode()
    code = child.wait(timeout=120)  # a hang guard, not a deadline
    assert code == 1
    assert stderr == ""  # no "Unexpected BrokenPipeError", no traceback
