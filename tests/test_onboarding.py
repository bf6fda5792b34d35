"""Adding a channel: the first import is chosen (or asked) at ``channel add`` and its
starting point recorded at once, against the real Dovecot."""

from __future__ import annotations

from datetime import UTC, datetime

import click.testing
import pytest

from eddymail.cli import cli
from tests.mailfactory import make_mail

SEEN = "\\Seen"


@pytest.fixture
def add_channel(eddymail, dovecot, mail_user):
    """``channel add support`` for the test mailbox, IMAP or POP3, with extra options."""
    eddymail("department", "add", "Support")

    def add(*options: str, protocol: str = "imap", port: int | None = None, code: int = 0):
        if port is None:
            port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        return eddymail("channel", "add", "support", "--department", "Support", "--email",
                        mail_user.address, "--login", mail_user.login, "--protocol", protocol,
                        "--host", dovecot.host, "--port", str(port), "--security", "ssl",
                        "--ca-file", str(dovecot.pki.ca_file), "--password-stdin", *options,
                        "--json", input=mail_user.password + "\n", code=code)

    return add


def subjects(eddymail) -> list[str]:
    return sorted(t["subject"] for t in eddymail.json("ticket", "list", "--status", "all")[
        "tickets"])


def test_mail_that_arrives_or_is_read_before_the_first_fetch_is_taken(
        eddymail, add_channel, dovecot, mail_user):
    dovecot.deliver(mail_user, make_mail("old and read"), seen=True)
    old = [dovecot.deliver(mail_user, make_mail(f"old {n}")) for n in range(1, 4)]
    added = add_channel("--initial", "2", "--no-notify")
    import json

    start = json.loads(added.stdout)["starting_point"]
    assert (start["recorded"], start["initial"]) == (True, 2)
    assert json.loads(added.stdout)["channel"]["notify_initial"] is False
    # Before the first fetch: a person reads one of the chosen ones in webmail, and new
    # mail arrives that is read at once too.
    dovecot.set_flags(mail_user, [SEEN], [old[2]])
    dovecot.deliver(mail_user, make_mail("new, read on the phone"), seen=True)
    dovecot.deliver(mail_user, make_mail("new, unread"))
    (report,) = eddymail.json("fetch", "--initial", "all")["channels"]
    assert report["first_connection"] is True and report["new_tickets"] == 4
    assert any("--initial not used" in notice for notice in report["notices"])
    assert subjects(eddymail) == ["new, read on the phone", "new, unread", "old 2", "old 3"]
    # Nothing else, ever: the rest was old when the channel was added.
    assert eddymail.json("fetch")["channels"][0]["fetched"] == 0
    assert eddymail.json("fetch")["channels"][0]["first_connection"] is False
    shown = eddymail("channel", "show", "support").stdout
    assert "Starting point" in shown and "taken at the first fetch" not in shown


def test_since_a_date_takes_read_and_unread_mail_from_that_day(eddymail, add_channel,
                                                                dovecot, mail_user):
    def at(day: int) -> datetime:
        return datetime(2026, 10, day, 12, 0, tzinfo=UTC)

    dovecot.deliver(mail_user, make_mail("September"), internal_date=at(1).replace(month=9))
    dovecot.deliver(mail_user, make_mail("October 14"), internal_date=at(14))
    dovecot.deliver(mail_user, make_mail("October 15, read"), internal_date=at(15), seen=True)
    dovecot.deliver(mail_user, make_mail("October 20"), internal_date=at(20))
    added = add_channel("--initial", "since 2026-10-15", "--no-notify")
    assert '"initial": 2' in added.stdout
    assert eddymail.json("channel", "show", "support")["channel"]["initial"] == (
        "since 2026-10-15")
    eddymail("fetch")
    assert subjects(eddymail) == ["October 15, read", "October 20"]


@pytest.mark.parametrize("initial", ["since 2026-13-01", "since yesterday", "lots", "-1"])
def test_a_wrong_first_import_is_refused_before_anything_is_stored(eddymail, add_channel,
                                                                    initial):
    result = add_channel("--initial", initial, code=2)
    assert "--initial must be" in result.stderr
    assert eddymail.json("channel", "list")["channels"] == []


def test_pop3_records_the_uidl_list_and_refuses_a_date(eddymail, add_channel, dovecot,
                                                       mail_user):
    refused = add_channel("--initial", "since 2026-10-01", protocol="pop3", code=2)
    assert "POP3 servers do not say when mail arrived" in refused.stderr
    for number in range(1, 4):
        dovecot.deliver(mail_user, make_mail(f"old {number}"))
    added = add_channel("--initial", "1", protocol="pop3")
    assert '"left_alone": 2' in added.stdout
    dovecot.deliver(mail_user, make_mail("arrived before the first fetch"))
    eddymail("fetch", "--no-notify")
    assert subjects(eddymail) == ["arrived before the first fetch", "old 3"]


def test_an_unreachable_server_at_add_leaves_the_starting_point_to_the_first_fetch(
        eddymail, add_channel, dovecot, mail_user):
    from tests.harness import free_port

    dovecot.deliver(mail_user, make_mail("waiting"))
    added = add_channel("--initial", "5", port=free_port())
    assert "the first fetch records it instead" in added.stderr
    assert '"recorded": false' in added.stdout
    assert any(e["operation"] == "record starting point"
               for e in eddymail.json("log")["entries"])
    eddymail("channel", "edit", "support", "--port", str(dovecot.imaps_port))
    (report,) = eddymail.json("fetch", "--no-notify")["channels"]
    assert report["first_connection"] and report["new_tickets"] == 1


def test_a_script_without_a_choice_keeps_the_first_fetch_rule(eddymail, add_channel, dovecot,
                                                              mail_user):
    added = add_channel()
    assert '"starting_point": null' in added.stdout
    assert eddymail.json("channel", "show", "support")["channel"]["started_at"] is None
    dovecot.deliver(mail_user, make_mail("one"))
    assert eddymail.json("fetch", "--initial", "none", "--no-notify")["channels"][0][
        "new_tickets"] == 0


def test_a_person_at_a_terminal_is_asked(eddymail, dovecot, mail_user, monkeypatch):
    eddymail("department", "add", "Support")
    for number in range(1, 4):
        dovecot.deliver(mail_user, make_mail(f"old {number}"))
    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True)
    answers = f"{mail_user.password}\n{mail_user.password}\nsince 2026-13-40\n1\nn\n"
    result = click.testing.CliRunner().invoke(cli, [
        "channel", "add", "support", "--department", "Support", "--email", mail_user.address,
        "--login", mail_user.login, "--host", dovecot.host, "--port", str(dovecot.imaps_port),
        "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file)], input=answers)
    assert result.exit_code == 0, result.output + result.stderr
    assert "First import:" in result.output and "--initial must be" in result.stderr
    assert "the first fetch takes 1 message(s) already there" in result.output
    channel = eddymail.json("channel", "show", "support")["channel"]
    assert (channel["initial"], channel["notify_initial"]) == ("1", False)
    eddymail("fetch")
    assert subjects(eddymail) == ["old 3"]


@pytest.mark.parametrize("notify", [False, True])
def test_the_first_import_notifies_senders_only_when_told(eddymail, add_channel, dovecot,
                                                          mail_user, smtp_server, notify):
    smtp_server.add_user(mail_user.login, mail_user.password)
    for n in range(2):
        dovecot.deliver(mail_user, make_mail(f"old {n}", sender=f"c{n}@customer.example"))
    add_channel("--initial", "all", "--smtp-host", smtp_server.host, "--smtp-port",
                str(smtp_server.port), "--smtp-security", "starttls",
                *([] if notify else ["--no-notify"]))
    eddymail("fetch")
    assert subjects(eddymail) == ["old 0", "old 1"]
    if notify:
        smtp_server.wait_for(2)
    # Later mail is notified either way: only the first import was chosen at add.
    dovecot.deliver(mail_user, make_mail("new", sender="c9@customer.example"))
    eddymail("fetch")
    letters = smtp_server.wait_for(3 if notify else 1)
    assert sorted(mail.rcpt_tos[0] for mail in letters) == sorted(
        ["c0@customer.example", "c1@customer.example"] * notify + ["c9@customer.example"])
