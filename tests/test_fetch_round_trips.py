"""What a fetch asks the server, counted command by command (real Dovecot, plain-text IMAP
through a recording proxy): an idle mailbox costs LOGIN, SELECT and LOGOUT, and the
shortcuts that make it so never cost a message (mail appended between runs, a folder whose
UIDVALIDITY changed, ``mail forget``, a run that failed half-way)."""

from __future__ import annotations

import logging
import re

import pytest

from tests.faults import CuttingProxy
from tests.mailfactory import make_mail, poison_mail

_COMMAND = re.compile(rb"^(\S+) (?:UID )?([A-Za-z]+)(.*)$")


@pytest.fixture
def proxy(dovecot):
    """A recording proxy in front of Dovecot's plain-text IMAP port."""
    with CuttingProxy("127.0.0.1", dovecot.imap_port) as recording:
        yield recording


@pytest.fixture
def add_channel(support, proxy, mail_user):
    """Adds channel ``NAME`` for the test user, reached through the proxy without TLS."""

    def add(name: str = "support", *options: str) -> None:
        support(name, "--email", mail_user.address, "--login", mail_user.login,
                "--protocol", "imap", "--host", "127.0.0.1", "--port", str(proxy.port),
                "--security", "none", *options, password=mail_user.password)

    return add


def commands_of(proxy: CuttingProxy, since: int = 0) -> list[list[tuple[str, str]]]:
    """(command, arguments) of every session from connection number ``since`` on, after
    every one of them was closed."""
    proxy.wait_closed()
    sessions = []
    for sent in proxy.client_bytes[since:]:
        session = []
        for line in bytes(sent).split(b"\r\n"):
            match = _COMMAND.match(line)
            if match is not None:
                session.append((match.group(2).decode().upper(), match.group(3).decode()))
        sessions.append(session)
    return sessions


def names(session: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in session]


def fetch(eddymail, *args, code=0):
    (report,) = eddymail.json("fetch", "--no-notify", *args, code=code)["channels"]
    return report


def test_an_idle_mailbox_costs_login_select_and_logout(eddymail, add_channel, proxy,
                                                       dovecot, mail_user):
    dovecot.deliver(mail_user, make_mail("first"))
    add_channel()
    assert fetch(eddymail)["fetched"] == 1
    for _ in range(2):
        before = proxy.connections
        assert fetch(eddymail)["fetched"] == 0
        (session,) = commands_of(proxy, before)
        # No CAPABILITY (the greeting and LOGIN's answer carry them), no SEARCH (UIDNEXT
        # did not move), LOGOUT not waited for.
        assert names(session) == ["LOGIN", "SELECT", "LOGOUT"]


def test_mail_appended_between_runs_is_searched_from_the_quiet_mark(eddymail, add_channel,
                                                                    proxy, dovecot, mail_user):
    add_channel()
    fetch(eddymail)
    first = dovecot.deliver(mail_user, make_mail("one"))
    assert fetch(eddymail)["fetched"] == 1  # searched: the mark was not set yet
    assert fetch(eddymail)["fetched"] == 0  # the mark is set
    for round_number in range(3):
        uids = [dovecot.deliver(mail_user, make_mail(f"round {round_number} #{n}"))
                for n in range(round_number + 1)]
        before = proxy.connections
        report = fetch(eddymail)
        assert (report["fetched"], report["new_tickets"]) == (len(uids), len(uids))
        (session,) = commands_of(proxy, before)
        searches = [arguments for name, arguments in session if name == "SEARCH"]
        # Only UIDs from the folder's UIDNEXT at the last quiet pass are asked for.
        assert searches == [f" UID {uids[0]}:*"]
        assert uids[0] > first
    subjects = sorted(t["subject"] for t in eddymail.json("ticket", "list")["tickets"])
    assert subjects == sorted(["one", "round 0 #0", "round 1 #0", "round 1 #1",
                               "round 2 #0", "round 2 #1", "round 2 #2"])


def test_a_renumbered_folder_is_searched_whole_even_at_the_same_uidnext(
        eddymail, add_channel, proxy, dovecot, mail_user):
    """The folder is deleted and made again with as many messages: the same UIDNEXT under a
    new UIDVALIDITY, and one of the messages is new."""
    dovecot.deliver(mail_user, make_mail("kept", body="kept\n"), folder="Help")
    add_channel("support", "--folder", "Help", "--initial", "all")
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("old", body="old\n"), folder="Help")
    assert fetch(eddymail)["fetched"] == 1
    assert fetch(eddymail)["fetched"] == 0  # quiet at UIDNEXT 3
    kept = dovecot.messages(mail_user, "Help")[0].raw
    dovecot.delete_folder(mail_user, "Help")
    dovecot.deliver(mail_user, kept, folder="Help")
    dovecot.deliver(mail_user, make_mail("renumbered and new", body="new\n"), folder="Help")
    assert [m.uid for m in dovecot.messages(mail_user, "Help")] == [1, 2]

    before = proxy.connections
    report = fetch(eddymail)
    assert (report["new_tickets"], report["duplicates"]) == (1, 1)
    (session,) = commands_of(proxy, before)
    assert "SEARCH" in names(session)
    assert fetch(eddymail)["fetched"] == 0
    subjects = sorted(t["subject"] for t in eddymail.json("ticket", "list")["tickets"])
    assert subjects == ["kept", "old", "renumbered and new"]


def test_a_forgotten_message_is_taken_again(eddymail, add_channel, proxy, dovecot, mail_user):
    add_channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("fine"))
    dovecot.deliver(mail_user, poison_mail())
    assert fetch(eddymail)["quarantined"] == 1
    assert fetch(eddymail)["fetched"] == 0  # quiet now: nothing searched
    (entry,) = eddymail.json("mail", "list", "--quarantined")["messages"]
    eddymail("mail", "forget", str(entry["id"]))

    before = proxy.connections
    assert fetch(eddymail)["quarantined"] == 1  # downloaded and refused again
    (session,) = commands_of(proxy, before)
    assert "SEARCH" in names(session) and "FETCH" in names(session)
    assert len(eddymail.json("mail", "list", "--quarantined")["messages"]) == 1


def test_a_run_that_failed_leaves_no_quiet_mark(eddymail, add_channel, proxy, dovecot,
                                                mail_user, monkeypatch):
    """A run that dies after the SELECT (here: the server cuts the connection during the
    download) must not mark the folder quiet: the next run searches and takes the mail."""
    add_channel()
    fetch(eddymail)
    dovecot.deliver(mail_user, make_mail("cut off", body="x" * 20000 + "\n"))
    proxy.cut_after_server_bytes = 2000
    failed = fetch(eddymail, code=3)
    assert failed["ok"] is False and failed["fetched"] == 0
    proxy.cut_after_server_bytes = None

    before = proxy.connections
    assert fetch(eddymail)["fetched"] == 1
    (session,) = commands_of(proxy, before)
    assert "SEARCH" in names(session)
    assert fetch(eddymail)["fetched"] == 0


def test_unread_only_channels_always_search(eddymail, add_channel, proxy, dovecot, mail_user):
    """With --unread-only a message read before the run is left out, yet taken if marked
    unread again: such a folder is never quiet."""
    add_channel("support", "--unread-only")
    fetch(eddymail)
    uid = dovecot.deliver(mail_user, make_mail("read by someone"), seen=True)
    assert fetch(eddymail)["fetched"] == 0
    dovecot.set_flags(mail_user, ["\\Seen"], [uid], add=False)
    before = proxy.connections
    assert fetch(eddymail)["fetched"] == 1
    (session,) = commands_of(proxy, before)
    assert "SEARCH" in names(session)



def test_an_idle_channel_costs_three_statements(eddymail, support, proxy, dovecot, caplog):
    """Each idle channel of a run costs its claim (one UPDATE that checks and notes), its
    cursor and one read of its ledger: counted as the statements peewee runs (its debug
    log), as the difference between a run over six idle channels and one over three."""
    names = []
    for number in range(6):
        user = dovecot.create_user()
        name = f"box{number}"
        support(name, "--email", user.address, "--login", user.login, "--protocol", "imap",
                "--host", "127.0.0.1", "--port", str(proxy.port), "--security", "none",
                password=user.password)
        names.append(name)
    eddymail("fetch", "--jobs", "1")
    eddymail("fetch", "--jobs", "1")  # every folder quiet from here on

    def statements(*chosen: str) -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            eddymail("fetch", "--jobs", "1", *chosen)
        return sum(record.name == "peewee" for record in caplog.records)

    per_channel = (statements(*names) - statements(*names[:3])) / 3
    assert per_channel == 3
