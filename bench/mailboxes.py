"""Mailboxes for the fetch benchmarks: messages, a seeded Maildir, sessions, an eddymail.

Shared by ``fetch_throughput.py``. Everything runs against a private Dovecot started with
``tests.harness`` (root needed, like the tests) and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import pwd
import random
import shlex
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from childprocess import Measurement, child_environment, measure

REPO_ROOT = Path(__file__).resolve().parent.parent
# A script's sys.path starts at bench/, so the harness in tests/ needs the root added.
sys.path.insert(0, str(REPO_ROOT))

from tests.harness.dovecot import DovecotServer, MailUser  # noqa: E402

TEXT_BYTES = 5 * 1024


# --- messages ------------------------------------------------------------------------------


def text_body(size: int, rng: random.Random) -> str:
    """About ``size`` bytes of plain text in 72-column lines."""
    words = ("printer", "invoice", "password", "urgent", "please", "server", "mailbox",
             "thanks", "again", "error", "since", "monday", "account", "cannot", "login")
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(10))[:72]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def make_message(number: int, rng: random.Random, attachment_bytes: int = 0) -> bytes:
    """One customer message: ~5 KB of text, plus a binary attachment if asked."""
    message = EmailMessage()
    message["From"] = f"Customer {number % 50} <customer{number % 50}@customer.example>"
    message["To"] = "help@example.test"
    message["Subject"] = f"Bench message {number}"
    message["Date"] = format_datetime(datetime(2026, 11, 27, 9, number // 60 % 60, number % 60,
                                               tzinfo=UTC))
    message["Message-ID"] = make_msgid(f"bench{number}", domain="customer.example")
    message.set_content(text_body(TEXT_BYTES, rng))
    if attachment_bytes:
        message.add_attachment(rng.randbytes(attachment_bytes), maintype="application",
                               subtype="octet-stream", filename=f"report-{number}.bin")
    return message.as_bytes()


# --- a seeded mailbox ----------------------------------------------------------------------


def maildir_of(server: DovecotServer, user: MailUser) -> Path:
    """The user's Maildir, created with the ownership Dovecot's mail processes expect."""
    owner = pwd.getpwnam("nobody")
    home = server.directory / "home" / user.login.lower()
    maildir = home / "Maildir"
    for path in (home, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        path.mkdir(exist_ok=True)
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o700)
    return maildir


def seed_maildir(server: DovecotServer, user: MailUser, messages: Sequence[bytes]) -> None:
    """Write messages straight into Maildir/new (much faster than APPEND), then let Dovecot
    index them with one SELECT so no timed loop pays for the indexing."""
    owner = pwd.getpwnam("nobody")
    maildir = maildir_of(server, user)
    stamp = int(time.time())
    for number, raw in enumerate(messages):
        raw = raw.replace(b"\r\n", b"\n")  # Maildir files use LF; IMAP shows CRLF
        # S= and W= (size with CRLF) spare Dovecot reading every file for RFC822.SIZE.
        crlf_size = len(raw) + raw.count(b"\n")
        name = f"{stamp}.M{number}P{os.getpid()}.bench,S={len(raw)},W={crlf_size}"
        temporary = maildir / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, owner.pw_uid, owner.pw_gid)
        temporary.chmod(0o600)
        temporary.rename(maildir / "new" / name)
    with imap_session(server, user) as imap:
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK" or int(data[0] or 0) != len(messages):
            raise RuntimeError(f"Dovecot sees {data!r} messages, {len(messages)} were seeded")


@contextlib.contextmanager
def imap_session(server: DovecotServer, user: MailUser, *,
                 tls: bool = True) -> Iterator[imaplib.IMAP4]:
    """A logged-in session straight to Dovecot: IMAPS verifying the test CA, as eddymail's own
    would, or plain IMAP with ``tls=False`` (the side that delivers mail in a bench)."""
    imap = (imaplib.IMAP4_SSL(server.host, server.imaps_port,
                              ssl_context=server.pki.client_context(), timeout=60)
            if tls else imaplib.IMAP4(server.host, server.imap_port, timeout=60))
    try:
        imap.login(user.login, user.password)
        yield imap
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


@contextlib.contextmanager
def pop3_session(server: DovecotServer, user: MailUser) -> Iterator[poplib.POP3_SSL]:
    """A logged-in POP3S session that verifies the test CA."""
    pop = poplib.POP3_SSL(server.host, server.pop3s_port,
                          context=server.pki.client_context(), timeout=60)
    try:
        pop.user(user.login)
        pop.pass_(user.password)
        yield pop
    finally:
        with contextlib.suppress(Exception):
            pop.quit()


# --- an eddymail as cron runs it -----------------------------------------------------------


@dataclass
class Workspace:
    """An isolated eddymail: its own database, HOME and XDG directories, no real keyring."""

    directory: Path

    def __post_init__(self) -> None:
        for name in ("home", "config", "data"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)

    @property
    def environment(self) -> dict[str, str]:
        """Environment for an eddymail child process in this workspace."""
        environment = {key: value for key, value in child_environment(os.environ).items()
                       if not key.startswith("EDDYMAIL_")}
        environment.update(
            HOME=str(self.directory / "home"),
            XDG_CONFIG_HOME=str(self.directory / "config"),
            XDG_DATA_HOME=str(self.directory / "data"),
            EDDYMAIL_DATABASE_URL=f"sqlite:///{self.directory / 'eddymail.db'}",
            # Channels use a password command; a keyring that is asked anyway fails loudly.
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            NO_COLOR="1",
        )
        return environment

    def command(self, *args: str, profile: Path | None = None) -> list[str]:
        """argv of ``eddymail ARGS`` with this interpreter, under cProfile if ``profile``."""
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        return [sys.executable, *profiler, "-m", "eddymail", *args]

    def run(self, *args: str) -> None:
        """Run ``eddymail ARGS`` (not measured); raise with its output when it fails."""
        measure(self.command(*args), env=self.environment, cwd=REPO_ROOT)

    def measured(self, *args: str, profile: Path | None = None) -> Measurement:
        """Run ``eddymail ARGS`` and measure it (wall, CPU, peak RSS of the child alone)."""
        return measure(self.command(*args, profile=profile), env=self.environment,
                       cwd=REPO_ROOT)

    def add_channel(self, server: DovecotServer, user: MailUser, name: str,
                    protocol: str = "imap") -> None:
        """An IMAPS or POP3S channel for ``user``; the password comes from ``cat FILE``."""
        password_file = self.directory / f"{name}.password"
        password_file.write_text(user.password + "\n")
        password_file.chmod(0o600)
        if not (self.directory / ".initialised").exists():
            self.run("init")  # makes the Support department
            (self.directory / ".initialised").touch()
        port = server.imaps_port if protocol == "imap" else server.pop3s_port
        self.run("channel", "add", name, "--department", "Support", "--email", user.address,
                 "--login", user.login, "--protocol", protocol, "--host", server.host,
                 "--port", str(port), "--security", "ssl",
                 "--ca-file", str(server.pki.ca_file),
                 *(["--after-fetch", "keep"] if protocol == "pop3" else []),
                 "--password-command", f"cat {shlex.quote(str(password_file))}")

    def count(self, table: str) -> int:
        """Rows in ``table`` of this workspace's database."""
        connection = sqlite3.connect(self.directory / "eddymail.db")
        try:
            return int(connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])  # noqa: S608
        finally:
            connection.close()
