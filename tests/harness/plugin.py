"""pytest fixtures for the real-server harness; loaded by ``tests/conftest.py`` through
``pytest_plugins = ["tests.harness.plugin"]``.

Fixtures:

* ``pki`` (session): a :class:`~tests.harness.certs.TestPKI`.
* ``oauth_server`` (session): a running :class:`~tests.harness.oauth_server.OAuthServer`.
* ``dovecot`` (session): a running :class:`~tests.harness.dovecot.DovecotServer`; besides
  passwords it takes XOAUTH2/OAUTHBEARER tokens issued by ``oauth_server`` (scope ``mail``).
* ``mail_user`` (function): a new mailbox on it, so tests never share mail.
* ``smtp_server`` (function): a fresh started :class:`~tests.harness.smtp.SmtpServer`.
* ``make_smtp_server`` (function): starts more SMTP servers with options; stops them after.
* ``memory_keyring`` (autouse): a fresh :class:`~tests.harness.keyring_backend.MemoryKeyring`.

When a test that used ``dovecot`` fails, what Dovecot logged during it is attached to the
report. Set ``EDDYMAIL_KEEP_DOVECOT=1`` to keep Dovecot's directory after the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest

from tests.harness import free_port
from tests.harness.certs import TestPKI, make_pki
from tests.harness.dovecot import DovecotServer, MailUser, start_dovecot
from tests.harness.keyring_backend import MemoryKeyring
from tests.harness.oauth_server import OAuthServer, start_oauth_server
from tests.harness.smtp import SmtpServer, start_smtp

__all__ = ["free_port"]

KEYRING_BACKEND = "tests.harness.keyring_backend.MemoryKeyring"
_LOG_OFFSET = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A test CA plus server certificates, shared by the whole session."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def oauth_server(pki: TestPKI) -> Iterator[OAuthServer]:
    """An OAuth 2.0 authorization server on loopback for the whole session."""
    server = start_oauth_server(pki)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot(pki: TestPKI, oauth_server: OAuthServer) -> Iterator[DovecotServer]:
    """A private Dovecot for the whole session, stopped (and its directory removed) at end."""
    # Not tmp_path_factory: pytest's base temp dir is 0700, and Dovecot's mail processes run
    # as 'nobody' and must reach the homes in here.
    directory = Path(tempfile.mkdtemp(prefix="eddymail-dovecot-"))
    try:
        server = start_dovecot(directory, pki,
                               oauth_introspection_url=oauth_server.introspection_url)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        if not os.environ.get("EDDYMAIL_KEEP_DOVECOT"):
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def mail_user(dovecot: DovecotServer) -> MailUser:
    """A brand-new mail user on the session's Dovecot."""
    if not dovecot.is_running():
        pytest.fail(f"Dovecot is no longer running; its log ends:\n{dovecot.log_tail()}")
    return dovecot.create_user()


@pytest.fixture
def smtp_server(pki: TestPKI) -> Iterator[SmtpServer]:
    """A fresh recording SMTP server for one test (STARTTLS port + SMTPS port)."""
    server = start_smtp(pki)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_smtp_server(pki: TestPKI) -> Iterator[Callable[..., SmtpServer]]:
    """Start extra SMTP servers with options, e.g. ``make_smtp_server(require_tls_for_auth=
    False)``; the keyword arguments are those of :func:`~tests.harness.smtp.start_smtp`.
    All of them are stopped after the test."""
    servers: list[SmtpServer] = []

    def make(**options: Any) -> SmtpServer:
        server = start_smtp(pki, **options)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    """Install a fresh in-memory keyring for every test and restore the previous one after."""
    # The environment variable first, so that even a keyring initialised from scratch during
    # the test (here or in a child process) never picks a real backend.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", KEYRING_BACKEND)
    # Read the module global rather than calling keyring.get_keyring(): that would run
    # keyring's backend detection, which probes the real keyrings, when none is set yet.
    previous = keyring.core._keyring_backend
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Remember where Dovecot's log was when a test using it started."""
    server = getattr(item, "funcargs", {}).get("dovecot")
    if isinstance(server, DovecotServer):
        with contextlib.suppress(OSError):
            item.stash[_LOG_OFFSET] = server.log_file.stat().st_size
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None]:
    """Attach what Dovecot logged during a failed test to its report."""
    report = yield
    offset = item.stash.get(_LOG_OFFSET, None)
    server = getattr(item, "funcargs", {}).get("dovecot")
    if report.when == "call" and report.failed and offset is not None and server is not None:
        try:
            with server.log_file.open("rb") as handle:
                handle.seek(offset)
                text = handle.read(64 * 1024).decode("utf-8", "replace")
        except OSError as error:
            text = f"(cannot read {server.log_file}: {error})"
        report.sections.append(("dovecot log", text or "(nothing logged)"))
    return report


# -- PostgreSQL ----------------------------------------------------------------------------
# A private cluster for the whole session and a fresh empty database per test. Without
# psycopg2 or the server binaries the tests are skipped on a developer's machine, but fail
# loudly under CI (CI=true), so a CI image that lost PostgreSQL cannot go green by skipping.


def _postgres_unavailable(reason: str) -> None:
    """Skip, or under ``$CI`` fail, every test that needs PostgreSQL."""
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set, so the PostgreSQL tests must run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A private PostgreSQL (:class:`~tests.harness.postgres.PostgresServer`) for the session.

    Started from ``initdb`` in a temp dir on a free loopback port, stopped by PID at the end.
    Set ``EDDYMAIL_KEEP_POSTGRES=1`` to keep its directory (data and log) afterwards.
    """
    from tests.harness import postgres

    try:
        import psycopg2  # noqa: F401  (only whether it imports matters here)
    except ImportError:
        _postgres_unavailable(postgres.PSYCOPG2_MISSING_MESSAGE)
    if postgres.find_postgres_binaries() is None:
        _postgres_unavailable(postgres.MISSING_MESSAGE)
    # Not tmp_path_factory: pytest's base temp dir is 0700 root, and the server runs as
    # the postgres user.
    directory = Path(tempfile.mkdtemp(prefix="eddymail-postgres-"))
    try:
        server = postgres.start_postgres(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        if not os.environ.get("EDDYMAIL_KEEP_POSTGRES"):
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """The URL of a brand-new empty database on the session's PostgreSQL (dropped after)."""
    if not postgres_server.is_running():
        pytest.fail(f"PostgreSQL is no longer running; its log ends:\n"
                    f"{postgres_server.log_tail()}")
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        # A test that failed half-way may leave eddymail's connection open in this process.
        from eddymail.db.connection import close_database

        with contextlib.suppress(Exception):
            close_database()
        postgres_server.drop_database(name)
