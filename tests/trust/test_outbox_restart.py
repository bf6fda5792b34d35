"""Issue 11, class 3: an interrupted send neither lingers for a quarter of an hour nor goes
out twice unrecognisably; mail that will never be sent can be cancelled and purged.

The rule (``eddymail.services.outgoing.outbox``): a row is claimed, and ``data_started_at``
is written just before SMTP DATA. A process killed before that point leaves a row the
server never saw: queued again after five minutes. Killed after it, the server may have
the mail: sent again only after an hour, with the same bytes and Message-ID. Time is
"passed" by ageing the row, never by waiting.
"""

from __future__ import annotations

import email
import sqlite3
from email.policy import default as default_policy

import pytest

from eddymail.crashpoints import CRASH_ENV, CRASH_EXIT_CODE
from tests.faults import run_cli
from tests.trust.conftest import raw_mail


@pytest.fixture
def queued(eddymail, support, smtp_server, mail_user):
    """One registration notification in the outbox of a channel that sends through the
    test SMTP server (the password by command: child processes have no test keyring)."""
    smtp_server.add_user(mail_user.login, mail_user.password)
    support("support", "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", "none", "--smtp-host", smtp_server.host,
            "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
            "--ca-file", str(smtp_server.ca_file),
            "--password-command", f"echo {mail_user.password}", password=None)
    eddymail("ingest", "--channel", "support",
             input=raw_mail("Anna <anna@customer.example>", "Printer").decode())
    (item,) = eddymail.json("outbox", "list")["outbox"]
    return item["id"]


def age(database_path, column: str, hours: float) -> None:
    with sqlite3.connect(database_path) as connection:
        connection.execute(f"UPDATE outbox_item SET {column} = datetime({column}, ?) "
                           "WHERE status = 'sending'", (f"-{hours * 60:.0f} minutes",))


def status(eddymail, item_id: int) -> dict:
    return next(i for i in eddymail.json("outbox", "list", "--all")["outbox"]
                if i["id"] == item_id)


def crash_at(point: str) -> None:
    run = run_cli("outbox", "retry", env={CRASH_ENV: point})
    assert run.returncode == CRASH_EXIT_CODE and f"({point})" in run.stderr, run.describe()


def message_ids(smtp_server) -> list[str]:
    return [email.message_from_bytes(mail.data, policy=default_policy)["Message-ID"]
            for mail in smtp_server.received]


def test_killed_before_data_the_mail_goes_out_after_minutes(
        eddymail, queued, smtp_server, database_path):
    crash_at("outbox claimed")
    assert status(eddymail, queued)["status"] == "sending"
    assert eddymail.json("outbox", "retry")["results"] == []  # a live sender may hold it
    age(database_path, "next_attempt_at", hours=0.2)  # twelve minutes later
    (result,) = eddymail.json("outbox", "retry")["results"]
    assert result["sent"] is True
    assert len(smtp_server.wait_for(1)) == 1


@pytest.mark.parametrize("point", ["outbox data started", "outbox accepted"])
def test_killed_during_data_the_mail_goes_out_again_only_after_an_hour_with_its_id(
        eddymail, queued, smtp_server, database_path, point):
    crash_at(point)
    delivered = 1 if point == "outbox accepted" else 0
    assert len(smtp_server.received) == delivered
    age(database_path, "next_attempt_at", hours=0.5)  # a stale claim, but DATA had begun
    assert eddymail.json("outbox", "retry")["results"] == []
    assert status(eddymail, queued)["status"] == "sending"
    age(database_path, "data_started_at", hours=1.5)
    (result,) = eddymail.json("outbox", "retry")["results"]
    assert result["sent"] is True
    smtp_server.wait_for(delivered + 1)
    ids = message_ids(smtp_server)
    assert len(ids) == delivered + 1 and len(set(ids)) == 1  # the same Message-ID
    (entry,) = [e for e in eddymail.json("log")["entries"] if "may have been" in e["message"]]
    assert ids[0].strip("<>") in entry["message"]


def test_a_fetch_releases_abandoned_rows_too(eddymail, queued, smtp_server, database_path):
    crash_at("outbox data started")
    age(database_path, "data_started_at", hours=2)
    eddymail("fetch")  # no incoming channel; the outbox rides along
    assert len(smtp_server.wait_for(1)) == 1
    assert status(eddymail, queued)["status"] == "sent"


def test_cancel_and_purge(eddymail, queued, smtp_server, support, tmp_path):
    cancelled = eddymail.json("outbox", "cancel", str(queued))["cancelled"]
    assert cancelled["status"] == "cancelled"
    assert eddymail.json("outbox", "retry", str(queued))["results"] == []
    assert "only queued or failed" in eddymail("outbox", "cancel", str(queued), code=2).stderr
    assert "No outbox mail #999" in eddymail("outbox", "cancel", "999", code=1).stderr
    # A test letter to a server that refuses the login: failed at once, kept for a look.
    support("broken", "--email", "broken@example.test", "--protocol", "none",
            "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
            "--smtp-security", "starttls", "--ca-file", str(smtp_server.ca_file),
            "--smtp-login", "nobody", password="wrong")
    eddymail("channel", "test", "broken", code=3)
    statuses = sorted(i["status"] for i in eddymail.json("outbox", "list")["outbox"])
    assert statuses == ["cancelled", "failed"]
    assert "--failed" in eddymail("outbox", "purge", code=2).stderr
    assert eddymail.json("outbox", "purge", "--failed")["purged"] == 2
    assert eddymail.json("outbox", "list", "--all")["outbox"] == []
    assert smtp_server.received == []
