"""Shared pieces of the OAuth tests: a fake clock (the ``clock`` fixture; this module is a
pytest plugin of ``tests/conftest.py``), options for a channel on the test authorization
server, and a stdin that plays the user's browser for ``--no-browser``."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from eddymail.services.oauth import flows, store
from tests.harness.oauth_server import OAuthClient, OAuthServer


@dataclass
class FakeClock:
    """Time that passes only when told: eddymail's token clock and poll sleeps, and the
    authorization server's clock, all move together."""

    server: OAuthServer
    offset: float = 0.0
    sleeps: list[float] = field(default_factory=list)
    on_sleep: list[Callable[[], None]] = field(default_factory=list)
    """Done at each sleep, in turn (one per sleep): what the user does meanwhile."""

    def now(self) -> float:
        import time

        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.server.advance(seconds)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        if self.on_sleep:
            self.on_sleep.pop(0)()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, oauth_server: OAuthServer) -> FakeClock:
    """A :class:`FakeClock` installed as eddymail's token clock and poll sleep."""
    fake = FakeClock(oauth_server)
    monkeypatch.setattr(store, "clock", fake.now)
    monkeypatch.setattr(flows, "sleep", fake.sleep)
    return fake


def endpoint_options(server: OAuthServer, client: OAuthClient, *, scopes: str = "mail smtp",
                     device: bool = True) -> list[str]:
    """``channel add`` options for a provider without a preset: the test server."""
    options = ["--auth", "oauth2", "--oauth-client-id", client.client_id,
               "--oauth-authorize-url", server.endpoint("authorize"),
               "--oauth-token-url", server.endpoint("token"),
               "--ca-file", str(server.pki.ca_file)]
    if device:
        options += ["--oauth-device-url", server.endpoint("device")]
    for scope in [*scopes.split(), "offline_access"]:
        options += ["--oauth-scope", scope]
    return options


def approve_as(server: OAuthServer, user: str, *, allow: bool = True) -> Callable[[], None]:
    """The user types every pending device code (one sign-in at a time in these tests)."""

    def act() -> None:
        for code in server.pending_user_codes():
            server.approve_device(code, user, allow=allow)

    return act


class BrowserPlayingStdin(io.RawIOBase):
    """stdin for ``--no-browser``: when eddymail reads the pasted address, this "user" takes
    the authorization URL eddymail printed on stderr so far, signs in with it at the test
    server and pastes back where the browser was sent (``tamper`` may change it first)."""

    def __init__(self, server: OAuthServer, user: str, *, allow: bool = True,
                 tamper: Callable[[str], str] = lambda address: address) -> None:
        super().__init__()
        self.server, self.user, self.allow, self.tamper = server, user, allow, tamper
        self.pending: bytes | None = None
        self.visited: list[str] = []

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not len(buffer):
            return 0  # click's probe (read(0)): too early to look at what was printed
        if self.pending is None:
            sys.stderr.flush()
            printed = sys.stderr.buffer.getvalue().decode()  # type: ignore[attr-defined]
            url = re.findall(r"https://\S+/authorize\?\S+", printed)[-1]
            self.visited.append(url)
            address = self.server.browser_visit(url, self.user, allow=self.allow)
            self.pending = (self.tamper(address) + "\n").encode()
        chunk, self.pending = self.pending[:len(buffer)], self.pending[len(buffer):]
        buffer[:len(chunk)] = chunk
        return len(chunk)
