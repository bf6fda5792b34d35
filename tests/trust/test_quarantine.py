"""Issue 11, class 13: a quarantine people can work with.

``mail quarantine list`` says who sent what, when, and why it is held; ``mail quarantine
export`` hands back the exact bytes; ``mail retry`` fails while the message stays
quarantined; a ``-q fetch`` that quarantined mail (already marked read on the server) says
so on stderr and exits 3.
"""

from __future__ import annotations

import os
import stat

from tests.mailfactory import poison_mail

# (raw message, the sender and subject the list must show, the word the reason must have)
HEAD = (b"From: =?utf-8?b?0JjQstCw0L0=?= <ivan@customer.example>\r\n"
        b"Subject: =?koi8-r?b?8NLJ18XU?=\r\nDate: Tue, 01 Dec 2026 09:30:00 +0300\r\n")
BOMB = poison_mail().replace(b"From: bomb@evil.example\r\nSubject: nested\r\n",
                             HEAD + b"MIME-Version: 1.0\r\n", 1)
OVER_LIMIT = (b"From: big@customer.example\r\nSubject: huge\r\n"
              b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\n" + b"x" * 3000 + b"\r\n")
BROKEN_HEADERS = poison_mail().replace(
    b"From: bomb@evil.example\r\nSubject: nested\r\n",
    b"From: \x1b]0;pwned\x07 <esc@evil.example>\r\nSubject: =?utf-8?q?broken=ZZ?=\r\n"
    b"Date: not a date\r\n", 1)


def quarantine(eddymail, tmp_path, *raws: bytes, limit: int | None = None) -> None:
    options = []
    if limit is not None:
        config = tmp_path / "limit.toml"
        config.write_text(f"[fetch]\nmax_message_bytes = {limit}\n")
        options = ["-c", str(config)]
    for raw in raws:
        (outcome,) = eddymail.json(*options, "ingest", "--department", "Support",
                                   input=raw.decode("latin-1"))["messages"]
        assert outcome["status"] == "quarantined"


def test_the_list_says_who_what_when_and_why(eddymail, support, tmp_path):
    quarantine(eddymail, tmp_path, BOMB, BROKEN_HEADERS)
    quarantine(eddymail, tmp_path, OVER_LIMIT, limit=2000)
    over, broken, bomb = eddymail.json("mail", "quarantine", "list")["messages"]
    assert (bomb["sender"], bomb["subject"]) == ("Иван <ivan@customer.example>", "Привет")
    assert bomb["date"] == "2026-12-01T06:30:00Z"
    assert "nest" in bomb["reason"].lower()
    assert over["sender"] == "big@customer.example" and over["subject"] == "huge"
    assert "limit" in over["reason"]
    assert broken["date"] is None and "esc@evil.example" in broken["sender"]
    shown = eddymail("mail", "quarantine", "list").stdout
    assert "Привет" in shown and "\x1b" not in shown and "\x07" not in shown


def test_export_writes_the_exact_bytes_to_a_new_private_file(eddymail, support, tmp_path):
    quarantine(eddymail, tmp_path, BOMB, BROKEN_HEADERS)
    second, first = (m["id"] for m in eddymail.json("mail", "quarantine", "list")["messages"])
    target = tmp_path / "held.eml"
    eddymail("mail", "quarantine", "export", str(first), str(target))
    assert target.read_bytes() == BOMB
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    again = eddymail("mail", "quarantine", "export", str(second), str(target), code=2)
    assert "exists" in again.stderr and target.read_bytes() == BOMB
    piped = eddymail("mail", "quarantine", "export", str(second), "-")
    assert piped.stdout_bytes == BROKEN_HEADERS
    missing = eddymail("mail", "quarantine", "export", "999", str(tmp_path / "x.eml"), code=1)
    assert "No quarantined message #999" in missing.stderr


def test_retry_fails_while_the_message_stays_quarantined(eddymail, support, tmp_path):
    quarantine(eddymail, tmp_path, BOMB)
    (held,) = eddymail.json("mail", "quarantine", "list")["messages"]
    still = eddymail("mail", "retry", str(held["id"]), code=1)
    assert "still quarantined" in still.stderr
    document = eddymail.json("mail", "retry", str(held["id"]), code=1)
    assert document["result"]["status"] == "quarantined"


def test_a_quiet_fetch_that_quarantined_mail_says_so_and_exits_3(eddymail, helpdesk, dovecot):
    dovecot.deliver(helpdesk, BOMB)
    quiet = eddymail("-q", "fetch", "--no-notify", code=3)
    assert "1 message(s) quarantined" in quiet.stderr and quiet.stdout == ""
    assert eddymail("-q", "fetch", "--no-notify").stderr == ""  # nothing new: silent, 0
    dovecot.deliver(helpdesk, BROKEN_HEADERS)
    loud = eddymail("fetch", "--no-notify")  # a person sees it in the summary
    assert "1 quarantined" in loud.stdout
