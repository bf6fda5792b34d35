"""`eddymail fetch` against the real Dovecot: what is taken, what the server is told."""

from __future__ import annotations

import json

import filelock
import pytest

from eddymail.services.fetch.locking import channel_lock_path
from tests.mailfactory import make_mail, poison_mail

SEEN = "\\Seen"


@pytest.fixture
def channel(eddymail, support, dovecot, mail_user):
    """Adds an IMAP (or POP3) channel for the test user; returns a function."""

    def add(name: str = "support", *options: str, protocol: str = "imap"):
        port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        return support(
            name, "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", protocol, "--host", dovecot.host, "--port", str(port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), *options,
            password=mail_user.password,
        )

    return add


def flags_by_subject(dovecot, user, folder="INBOX"):
    result = {}
    for stored in dovecot.messages(user, folder):
        subject = next(line for line in stored.raw.split(b"\r\n") if line.startswith(b"Subject:"))
        result[subject.decode()[9:]] = stored.flags
    return result


def fetch(eddymail, *args, code=0):
    return eddymail.json("fetch", *args, code=code)


def test_first_fetch_takes_unread_mail_marks_it_read_and_leaves_old_read_mail(
        eddymail, channel, dovecot, mail_user):
    dovecot.deliver(mail_user, make_mail("old and read"), seen=True)
    dovecot.deliver(mail_user, make_mail("first"))
    dovecot.deliver(mail_user, make_mail("second", sender="Bob <bob@other.example>"))
    channel()
    (report,) = fetch(eddymail)["channels"]
    assert report["ok"] is True and report["first_connection"] is True
    assert (report["fetched"], report["new_tickets"], report["followups"]) == (2, 2, 0)
    assert report["error"] is None
    tickets = eddymail.json("ticket", "list")["tickets"]
    assert sorted(t["subject"] for t in tickets) == ["first", "second"]
    assert {t["requester"] for t in tickets} == {"anna@customer.example", "bob@other.example"}
    flags = flags_by_subject(dovecot, mail_user)
    assert SEEN in flags["first"] and SEEN in flags["second"]
    # Nothing new: a second run takes nothing.
    assert fetch(eddymail)["channels"][0]["fetched"] == 0


def test_mail_read_in_webmail_after_connection_is_still_taken(eddymail, channel, dovecot,
                                                              mail_user):
    channel()
    fetch(eddymail)  # first connection on an empty mailbox
    dovecot.deliver(mail_user, make_mail("read on the phone"), seen=True)
    (report,) = fetch(eddymail)["channels"]
    assert report["new_tickets"] == 1
    assert eddymail.json("ticket", "list")["tickets"][0]["subject"] == "read on the phone"


def test_unread_only_keeps_the_classic_rule(eddymail, channel, dovecot, mail_user):
    channel("support", "--unread-only")
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("read elsewhere"), seen=True)
    dovecot.deliver(mail_user, make_mail("unread"))
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    assert [t["subject"] for t in eddymail.json("ticket", "list")["tickets"]] == ["unread"]


def test_marking_mail_unread_again_does_not_import_it_twice(eddymail, channel, dovecot,
                                                             mail_user):
    channel()
    uid = dovecot.deliver(mail_user, make_mail("once"))
    fetch(eddymail)
    assert SEEN in flags_by_subject(dovecot, mail_user)["once"]
    dovecot.set_flags(mail_user, [SEEN], [uid], add=False)
    assert SEEN not in flags_by_subject(dovecot, mail_user)["once"]
    assert fetch(eddymail)["channels"][0]["fetched"] == 0
    assert len(eddymail.json("ticket", "list")["tickets"]) == 1


def test_initial_limit_takes_the_last_n_unread_and_never_the_rest(eddymail, channel, dovecot,
                                                                  mail_user):
    for number in range(1, 6):
        dovecot.deliver(mail_user, make_mail(f"old {number}"))
    channel("support", "--initial", "2")
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 2
    dovecot.deliver(mail_user, make_mail("new"))
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    subjects = sorted(t["subject"] for t in eddymail.json("ticket", "list")["tickets"])
    assert subjects == ["new", "old 4", "old 5"]
    flags = flags_by_subject(dovecot, mail_user)
    assert SEEN not in flags["old 1"]  # left alone, untouched


@pytest.mark.parametrize(("initial", "expected"), [("none", 0), ("all", 3)])
def test_initial_override_for_one_run(eddymail, channel, dovecot, mail_user, initial, expected):
    for number in range(3):
        dovecot.deliver(mail_user, make_mail(f"old {number}"))
    channel()
    assert fetch(eddymail, "--initial", initial)["channels"][0]["new_tickets"] == expected


def test_dry_run_changes_nothing(eddymail, channel, dovecot, mail_user, database_path):
    dovecot.deliver(mail_user, make_mail("waiting"))
    channel()
    (report,) = fetch(eddymail, "--dry-run")["channels"]
    assert report["would_fetch"] == 1 and report["fetched"] == 0
    assert eddymail.json("ticket", "list")["tickets"] == []
    assert SEEN not in flags_by_subject(dovecot, mail_user)["waiting"]
    # The real first fetch still sees a first connection.
    assert fetch(eddymail)["channels"][0]["first_connection"] is True


@pytest.mark.parametrize("action", ["keep", "move", "delete"])
def test_after_fetch_actions(eddymail, channel, dovecot, mail_user, action):
    options = ["--after-fetch", action] + (["--move-to", "Processed"] if action == "move" else [])
    channel("support", *options)
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("handled"))
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    inbox = flags_by_subject(dovecot, mail_user)
    if action == "keep":
        assert SEEN not in inbox["handled"]
    else:
        assert "handled" not in inbox
    if action == "move":
        assert "handled" in flags_by_subject(dovecot, mail_user, "Processed")
    assert fetch(eddymail)["channels"][0]["fetched"] == 0


def test_reply_lands_in_the_existing_ticket_and_reopens_it(eddymail, channel, dovecot,
                                                           mail_user, database_path):
    channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("question", message_id="<q1@customer.example>"))
    fetch(eddymail)
    import sqlite3

    connection = sqlite3.connect(database_path)
    connection.execute("UPDATE ticket SET status = 'closed'")
    connection.commit()
    dovecot.deliver(mail_user, make_mail("Re: question", in_reply_to="<q1@customer.example>",
                                         references="<q1@customer.example>"))
    (report,) = fetch(eddymail)["channels"]
    assert (report["followups"], report["new_tickets"]) == (1, 0)
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert ticket["status"] == "open"
    assert [m["subject"] for m in ticket["messages"]] == ["question", "Re: question"]
    assert ticket["messages"][0]["from"] == {"address": "anna@customer.example",
                                             "name": "Anna Customer"}


def test_subject_tag_from_a_participant_joins_from_a_stranger_does_not(eddymail, channel,
                                                                       dovecot, mail_user):
    channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("broken login"))
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("Re: [#1] broken login"))
    dovecot.deliver(mail_user, make_mail("Re: [#1] broken login",
                                         sender="Mallory <mallory@evil.example>",
                                         cc="mallory2@evil.example"))
    (report,) = fetch(eddymail)["channels"]
    assert (report["followups"], report["new_tickets"]) == (1, 1)
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert len(ticket["messages"]) == 2 and ticket["participants"] == []
    stranger = eddymail.json("ticket", "show", "2")["ticket"]
    assert stranger["requester"] == "mallory@evil.example" and stranger["carried_tag"] == 1


def verified(raw: bytes, result: str = "pass") -> bytes:
    """``raw`` as the provider's MX (authserv-id mx.example.test) would hand it over."""
    return (f"Authentication-Results: mx.example.test; dmarc={result} "
            "header.from=customer.example\r\n").encode() + raw


def test_cc_of_verified_mail_become_participants_others_are_only_shown(
        eddymail, channel, dovecot, mail_user):
    channel("support", "--authserv-id", "mx.example.test")
    fetch(eddymail)
    cc = f"Carl <carl@customer.example>, {mail_user.address}"
    dovecot.deliver(mail_user, verified(make_mail("team issue", cc=cc)))
    # Unverified: no Authentication-Results from our provider, or one that is not a pass.
    dovecot.deliver(mail_user, make_mail("unchecked", cc="Dora <dora@customer.example>"))
    dovecot.deliver(mail_user, verified(make_mail("none", cc="erin@customer.example"), "none"))
    fetch(eddymail)
    tickets = {t["subject"]: t["id"] for t in eddymail.json("ticket", "list")["tickets"]}
    first = eddymail.json("ticket", "show", str(tickets["team issue"]))["ticket"]
    assert first["participants"] == ["carl@customer.example"]  # not our own mailbox
    assert first["cc_not_added"] == []
    for subject, address in (("unchecked", "dora@customer.example"),
                             ("none", "erin@customer.example")):
        ticket = eddymail.json("ticket", "show", str(tickets[subject]))["ticket"]
        assert ticket["participants"] == [] and ticket["cc_not_added"] == [address]
        assert ticket["messages"][0]["cc"][0]["address"] == address  # recorded on the mail
        shown = eddymail("ticket", "show", str(tickets[subject])).stdout
        assert f"Cc, not added  {address}" in shown and f"Cc: {address}" in shown


def test_same_message_twice_makes_one_ticket(eddymail, channel, dovecot, mail_user):
    channel()
    fetch(eddymail)
    raw = make_mail("twice", message_id="<dup@customer.example>")
    dovecot.deliver(mail_user, raw)
    dovecot.deliver(mail_user, raw)
    # The same mail by another route: other bytes (a trace header), the same content. (A
    # different message under the same Message-ID is stored: tests/trust/test_message_ids.py)
    dovecot.deliver(mail_user, b"Received: from relay.example by mx.example\n" + raw)
    (report,) = fetch(eddymail)["channels"]
    assert (report["new_tickets"], report["duplicates"]) == (1, 2)


def test_poison_message_is_quarantined_and_the_others_go_on(eddymail, channel, dovecot,
                                                            mail_user, database_path):
    channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("good one"))
    dovecot.deliver(mail_user, poison_mail())
    dovecot.deliver(mail_user, make_mail("good two"))
    (report,) = fetch(eddymail)["channels"]
    assert (report["new_tickets"], report["quarantined"]) == (2, 1)
    quarantined = eddymail.json("mail", "list", "--quarantined")["messages"]
    assert len(quarantined) == 1 and "nest" in quarantined[0]["error"].lower()
    import sqlite3

    (stored,) = sqlite3.connect(database_path).execute(
        "SELECT r.data FROM ledger_entry l JOIN raw_message r ON r.id = l.raw_id "
        "WHERE l.status = 'quarantined'").fetchone()
    assert stored == poison_mail().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert SEEN in flags_by_subject(dovecot, mail_user)["nested"]
    retried = eddymail.json("mail", "retry", str(quarantined[0]["id"]), code=1)["result"]
    assert retried["status"] == "quarantined"


def test_oversized_message_is_quarantined_with_headers_only(eddymail, channel, dovecot,
                                                            mail_user, tmp_path):
    config = tmp_path / "small.toml"
    config.write_text("[fetch]\nmax_message_bytes = 2000\n")
    channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("huge", body="x" * 5000 + "\n"))
    dovecot.deliver(mail_user, make_mail("small"))
    (report,) = eddymail.json("-c", str(config), "fetch")["channels"]
    assert (report["new_tickets"], report["quarantined"]) == (1, 1)
    (entry,) = eddymail.json("mail", "list", "--quarantined")["messages"]
    assert entry["headers_only"] is True and "over the limit" in entry["error"]


def test_pop3_leaves_mail_by_default_and_takes_each_message_once(eddymail, channel, dovecot,
                                                                 mail_user):
    dovecot.deliver(mail_user, make_mail("pop old"))
    channel("pop", protocol="pop3")
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    dovecot.deliver(mail_user, make_mail("pop new"))
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    assert fetch(eddymail)["channels"][0]["fetched"] == 0
    assert len(dovecot.messages(mail_user)) == 2


def test_pop3_initial_limit_and_delete_after_import(eddymail, channel, dovecot, mail_user):
    for number in range(4):
        dovecot.deliver(mail_user, make_mail(f"pop {number}"))
    channel("pop", "--initial", "1", "--after-fetch", "delete", protocol="pop3")
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    assert sorted(flags_by_subject(dovecot, mail_user)) == ["pop 0", "pop 1", "pop 2"]
    dovecot.deliver(mail_user, make_mail("pop later"))
    assert fetch(eddymail)["channels"][0]["new_tickets"] == 1
    assert "pop later" not in flags_by_subject(dovecot, mail_user)


def test_failing_channel_is_isolated_exit_3(eddymail, channel, support, dovecot, mail_user):
    channel()
    support("broken", "--email", "x@example.test", "--host", dovecot.host, "--port",
            str(dovecot.imaps_port), "--security", "ssl", "--ca-file",
            str(dovecot.pki.ca_file), password="wrong")
    dovecot.deliver(mail_user, make_mail("still arrives"))
    result = eddymail("fetch", "--json", code=3)
    reports = {r["name"]: r for r in json.loads(result.stdout)["channels"]}
    assert reports["support"]["ok"] and reports["support"]["new_tickets"] == 1
    assert reports["broken"]["ok"] is False
    assert "AUTHENTICATIONFAILED" in reports["broken"]["error"]
    failure_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(failure_lines) == 1 and failure_lines[0].startswith("Error: broken:")
    (entry,) = eddymail.json("log", "--channel", "broken")["entries"]
    assert "AUTHENTICATIONFAILED" in entry["answer"]


def test_quiet_fetch_prints_nothing_on_success(eddymail, channel, dovecot, mail_user):
    channel()
    dovecot.deliver(mail_user, make_mail("quiet"))
    result = eddymail("-q", "fetch")
    assert result.stdout == "" and result.stderr == ""


def test_summary_line_for_people(eddymail, channel, dovecot, mail_user):
    channel()
    dovecot.deliver(mail_user, make_mail("hello"))
    assert "support: 1 fetched: 1 new ticket(s), 0 follow-up(s)" in eddymail("fetch").stdout


def test_overlapping_run_exits_75_silently_under_quiet(eddymail, channel, database_path):
    channel()
    lock_path = channel_lock_path(f"sqlite:///{database_path}", 1)
    lock_path.parent.mkdir(parents=True, exist_ok=True)  # (filelock < 3.12.3 does not)
    with filelock.FileLock(str(lock_path), timeout=0):
        quiet = eddymail("-q", "fetch", code=75)
        assert quiet.stdout == "" and quiet.stderr == ""
        loud = eddymail("fetch", code=75)
        assert "Another eddymail fetch is running" in loud.stderr


def test_notifications_reach_new_senders_and_never_automatic_mail(
        eddymail, channel, dovecot, mail_user, database_path, smtp_server):
    smtp_server.add_user(mail_user.login, mail_user.password)
    channel("support", "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
            "--smtp-security", "starttls")
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("first contact"))
    dovecot.deliver(mail_user, make_mail("second from same", message_id="<x2@customer.example>"))
    dovecot.deliver(mail_user, make_mail("out of office", sender="Away <away@customer.example>",
                                         headers={"Auto-Submitted": "auto-replied"}))
    dovecot.deliver(mail_user, make_mail("newsletter", sender="News <news@list.example>",
                                         headers={"List-Id": "<news.list.example>"}))
    dovecot.deliver(mail_user, make_mail("bulk", sender="Promo <promo@shop.example>",
                                         headers={"Precedence": "bulk"}))
    dovecot.deliver(mail_user, make_mail("bounce", sender="MAILER-DAEMON@mx.example"))
    dovecot.deliver(mail_user, make_mail("loop", sender=f"Us <{mail_user.address}>"))
    report = fetch(eddymail)
    assert [r["sent"] for r in report["outbox"]] == [True, True]
    import sqlite3

    rows = sqlite3.connect(database_path).execute(
        "SELECT recipient, template, kind, automatic, status FROM outbox_item").fetchall()
    assert rows == [("anna@customer.example", "registration", "notification", 1, "sent"),
                    ("anna@customer.example", "ticket_created", "notification", 1, "sent")]
    received = smtp_server.wait_for(2)
    assert {tuple(mail.rcpt_tos) for mail in received} == {("anna@customer.example",)}
    import email

    letters = [email.message_from_bytes(mail.data) for mail in received]
    assert all(letter["Auto-Submitted"] == "auto-replied" for letter in letters)
    assert all(letter["X-Auto-Response-Suppress"] == "All" for letter in letters)
    assert "[#1]" in letters[0]["Subject"]


def test_no_notify_imports_silently(eddymail, channel, dovecot, mail_user, database_path):
    channel("support", "--smtp-host", "127.0.0.1")
    dovecot.deliver(mail_user, make_mail("first batch"))
    fetch(eddymail, "--no-notify")
    import sqlite3

    assert sqlite3.connect(database_path).execute(
        "SELECT COUNT(*) FROM outbox_item").fetchone() == (0,)
