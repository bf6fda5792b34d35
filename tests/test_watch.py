"""``eddymail watch`` against the real Dovecot (issue 13): IDLE wake-up, a server that drops
the connection, a server restart, channels added and removed while watching, SIGTERM in the
middle of a message.

Each watch is a real child process whose stderr (one log line per event) the test reads as
it comes; ``--once`` makes it exit after the first new mail it took in. Waits are for log
lines or states, never fixed sleeps, and no assertion is about how long anything took.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eddymail.crashpoints import PAUSE_DIR_ENV, PAUSE_ENV
from tests.faults import REPO_ROOT, CuttingProxy, cli_command, cli_environment, run_cli
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail

SEEN = "\\Seen"
HANG_GUARD = 300.0  # seconds before a stuck watch is killed (the test then fails on that)


class WatchProcess:
    """``eddymail watch`` as a child process; its stderr lines collected as they come."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            cli_command("-c", str(config), "watch", *args), env=cli_environment(env),
            cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def wait_for(self, text: str, count: int = 1) -> None:
        """Until ``count`` lines contain ``text``; fails if the process ends first. A hang
        guard kills a watch still waiting after minutes, which then fails the same way."""
        self.until(lambda: self.count(text) >= count, f"{count}x {text!r} in the watch log")

    def until(self, condition: Callable[[], bool], what: str) -> None:
        """Poll ``condition`` while the watch runs; fail (with its log) if it ends first."""
        guard = time.monotonic() + HANG_GUARD
        while not condition():
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"no {what} (exit {self.process.poll()}):\n" + self.log())
            if time.monotonic() > guard:
                self.process.kill()  # hung: its exit fails the test above
            time.sleep(0.01)

    def wait(self) -> int:
        code = self.process.wait(timeout=HANG_GUARD)
        self._reader.join(timeout=5)
        return code

    def log(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Quick reloads and reconnects, so the tests wait little."""
    path = tmp_path / "eddymail.toml"
    path.write_text("[watch]\nreload_seconds = 0.2\nbackoff_seconds = 0.05\n"
                    "backoff_max_seconds = 0.2\noutbox_seconds = 0.5\npoll_seconds = 0.3\n"
                    "[fetch]\nbatch_size = 1\n")
    return path


@pytest.fixture
def watches():
    started: list[WatchProcess] = []

    def start(*args: str, **kwargs: Any) -> WatchProcess:
        watch = WatchProcess(*args, **kwargs)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.kill()


@pytest.fixture
def add_channel(eddymail, dovecot: DovecotServer, tmp_path: Path) -> Callable[..., MailUser]:
    """Adds a channel for a new mailbox (optionally through a proxy port); its user."""
    eddymail("department", "add", "Support")

    def add(name: str, user: MailUser | None = None, *, port: int | None = None,
            protocol: str = "imap") -> MailUser:
        user = user or dovecot.create_user()
        password_file = tmp_path / f"password-{name}"
        password_file.write_text(user.password + "\n")
        default_port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        eddymail("channel", "add", name, "--department", "Support", "--email", user.address,
                 "--login", user.login, "--protocol", protocol, "--host", "127.0.0.1",
                 "--port", str(port or default_port), "--security", "ssl",
                 "--ca-file", str(dovecot.pki.ca_file),
                 "--password-command", f"cat {shlex.quote(str(password_file))}")
        return user

    return add


def tickets(eddymail) -> list[dict[str, Any]]:
    return eddymail.json("ticket", "list")["tickets"]


def test_idle_wakes_the_watch_when_mail_arrives(eddymail, dovecot, add_channel, config,
                                               watches):
    user = add_channel("box0")
    watch = watches(config, "--once")
    watch.wait_for("box0: connected, waiting for mail (IDLE)")
    dovecot.deliver(user, make_mail("Arrived while idling"))
    assert watch.wait() == 0, watch.log()
    assert watch.count("box0: new mail announced") == 1, watch.log()
    assert watch.count("box0: 1 fetched: 1 new ticket(s)") == 1, watch.log()
    assert [t["subject"] for t in tickets(eddymail)] == ["Arrived while idling"]
    assert [m.flags for m in dovecot.messages(user)] == [{SEEN}]


def test_pop3_channels_are_polled(eddymail, dovecot, add_channel, config, watches):
    user = add_channel("pop", protocol="pop3")
    watch = watches(config, "--once")
    watch.wait_for("pop: connected, looking for mail every 0.3 s")
    dovecot.deliver(user, make_mail("Polled"))
    assert watch.wait() == 0, watch.log()
    assert [t["subject"] for t in tickets(eddymail)] == ["Polled"]


def test_a_dropped_connection_is_made_again(eddymail, dovecot, add_channel, config, watches):
    with CuttingProxy("127.0.0.1", dovecot.imaps_port) as proxy:
        user = add_channel("box0", port=proxy.port)
        watch = watches(config, "--once")
        watch.wait_for("box0: connected, waiting for mail (IDLE)")
        assert proxy.cut_all() == 1
        watch.wait_for("connecting again in")
        watch.wait_for("box0: connected, waiting for mail (IDLE)", count=2)
        dovecot.deliver(user, make_mail("After the cut"))
        assert watch.wait() == 0, watch.log()
    assert [t["subject"] for t in tickets(eddymail)] == ["After the cut"]


def test_a_server_restart_is_waited_out(eddymail, dovecot, add_channel, config, watches):
    """The server goes away (connections dropped, connects refused) and comes back on the
    same port: the watch retries with back-off until it is there, then takes the mail
    that arrived while it was down."""
    with CuttingProxy("127.0.0.1", dovecot.imaps_port) as proxy:
        user = add_channel("box0", port=proxy.port)
        watch = watches(config, "--once")
        watch.wait_for("box0: connected, waiting for mail (IDLE)")
        proxy.pause()
        watch.wait_for("connecting again in", count=3)  # lost, then refused, refused
        dovecot.deliver(user, make_mail("While the server was down"))
        proxy.resume()
        assert watch.wait() == 0, watch.log()
    assert "refused" in watch.log().lower()
    assert [t["subject"] for t in tickets(eddymail)] == ["While the server was down"]


def test_channels_added_and_removed_while_watching_are_followed(eddymail, dovecot,
                                                                add_channel, config, watches):
    add_channel("box0")
    add_channel("gone")
    watch = watches(config, "--once")
    watch.wait_for("box0: connected, waiting for mail (IDLE)")
    watch.wait_for("gone: connected, waiting for mail (IDLE)")
    eddymail("channel", "remove", "gone", "--yes")
    watch.wait_for("gone: channel removed or disabled")
    eddymail("channel", "edit", "box0", "--folder", "INBOX")
    watch.wait_for("box0: channel changed; reconnecting")
    waiting = dovecot.create_user()
    dovecot.deliver(waiting, make_mail("Waiting in the new mailbox"))
    add_channel("late", waiting)
    watch.wait_for("late: channel added")
    assert watch.wait() == 0, watch.log()  # its mail was the news --once waited for
    assert [t["subject"] for t in tickets(eddymail)] == ["Waiting in the new mailbox"]


def test_sigterm_in_the_middle_of_a_message_loses_nothing(eddymail, dovecot, add_channel,
                                                         config, watches, tmp_path):
    """SIGTERM while a message is in hand (downloaded, being stored): the watch stores it
    (and the one already downloaded behind it), downloads nothing more and exits 0; the
    next run takes the rest, each once."""
    user = add_channel("box0")
    for number in range(3):
        dovecot.deliver(user, make_mail(f"Waiting {number}"))
    reached = tmp_path / "imap-downloaded.reached"
    watch = watches(config, env={PAUSE_ENV: "imap downloaded", PAUSE_DIR_ENV: str(tmp_path)})
    try:
        watch.until(reached.exists, "stop at the message in hand")
        watch.process.send_signal(signal.SIGTERM)
        watch.wait_for("stopping")
    finally:
        (tmp_path / "imap-downloaded.go").touch()
    assert watch.wait() == 0, watch.log()
    assert "stopped (SIGTERM)" in watch.log()
    taken = len(tickets(eddymail))
    assert 1 <= taken < 3, watch.log()  # the one in hand is kept; it stopped before the end
    rest = run_cli("--json", "fetch")
    assert rest.returncode == 0, rest.describe()
    assert json.loads(rest.stdout)["channels"][0]["fetched"] == 3 - taken
    assert sorted(t["subject"] for t in tickets(eddymail)) == [f"Waiting {n}" for n in range(3)]
    assert [m.flags for m in dovecot.messages(user)] == [{SEEN}] * 3
