"""A private PostgreSQL cluster for tests.

:func:`start_postgres` runs ``initdb`` into a temporary directory as the ``postgres`` OS user
and starts ``postgres -D DIR -k SOCKETDIR -h 127.0.0.1 -p PORT`` as a child process of the
test run; the system cluster, its service and ``/etc/postgresql`` are never used.
:meth:`PostgresServer.create_database` hands each test a fresh empty database.

Authentication, as a real deployment would meet it:

* the ``postgres`` superuser may connect over 127.0.0.1 without a password (``trust``), so
  test URLs are simply ``postgresql://postgres@127.0.0.1:PORT/DBNAME``;
* every other role must give its password (``scram-sha-256``), so a test can show what a
  wrong password in the URL does; see :meth:`PostgresServer.create_role`.

The cluster trades durability for speed (``fsync=off``): it lives for one test session.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness import die_with_parent, free_port, tail, terminate_process_group

__all__ = [
    "MISSING_MESSAGE",
    "PostgresServer",
    "find_postgres_binaries",
    "start_postgres",
]

MISSING_MESSAGE = "PostgreSQL is not installed: apt-get install postgresql"
"""The one hint every "cannot run PostgreSQL tests" failure carries."""

PSYCOPG2_MISSING_MESSAGE = (
    "psycopg2 is not installed: pip install psycopg2-binary (or pip install -e '.[postgresql]')"
)

BINARIES_GLOB = "/usr/lib/postgresql/*/bin"
"""Where Debian's postgresql-NN packages put initdb and postgres (they are not on $PATH)."""

OS_USER = "postgres"
"""The PostgreSQL server refuses to run as root; the Debian package creates this user."""

SUPERUSER = "postgres"


def find_postgres_binaries(pattern: str | None = None) -> Path | None:
    """The newest installed ``bin`` directory holding both ``initdb`` and ``postgres``.

    ``pattern`` defaults to :data:`BINARIES_GLOB`, read at call time so a test can point it
    somewhere empty to see what a machine without PostgreSQL does.
    """
    pattern = pattern or BINARIES_GLOB
    candidates = []
    for directory in Path("/").glob(pattern.lstrip("/")):
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            version = directory.parent.name
            # "15" and "9.6" alike: compare numerically, so 16 beats 9.6.
            key = tuple(int(part) for part in version.split(".") if part.isdigit())
            candidates.append((key, directory))
    return max(candidates)[1] if candidates else None


class PostgresServer:
    """A running private PostgreSQL; made by :func:`start_postgres`, ended by :meth:`stop`."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        directory: Path,
        bin_dir: Path,
        process: subprocess.Popen[bytes],
        port: int,
        socket_dir: Path,
        log_file: Path,
    ) -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.port = port
        self.socket_dir = socket_dir
        """Where the server's Unix socket lives (``-k``); nothing else listens there."""
        self.log_file = log_file
        self._process = process
        self._names = itertools.count(1)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """PID of the ``postgres`` postmaster this harness started."""
        return self._process.pid

    def is_running(self) -> bool:
        """True while the postmaster is alive."""
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop the server and reap it. Safe to call twice.

        SIGTERM is PostgreSQL's "smart" shutdown, which waits for clients to leave; SIGINT
        ("fast") disconnects them, so a test that leaked a connection cannot hang teardown.
        """
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=15)
        terminate_process_group(self._process)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server log (for failure messages)."""
        return tail(self.log_file, lines)

    # -- URLs and databases ----------------------------------------------------------------

    def url(self, database: str = "postgres", *, user: str = SUPERUSER,
            password: str | None = None, port: int | None = None) -> str:
        """A ``postgresql://`` URL as eddymail takes it (``playhouse.db_url`` spelling)."""
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@{self.host}:{port or self.port}/{database}"

    def connect(self, database: str = "postgres", **options: Any) -> Any:
        """A psycopg2 connection as the superuser, in autocommit mode (for admin work)."""
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname=database,
            connect_timeout=10, **options,
        )
        connection.autocommit = True  # CREATE/DROP DATABASE refuse to run in a transaction
        return connection

    def execute(self, sql: str, parameters: tuple[Any, ...] = (),
                database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement as the superuser and return its rows (empty when it has none)."""
        connection = self.connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, parameters)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (no eddymail schema yet) and return its name."""
        name = name or f"eddymail_test_{os.getpid()}_{next(self._names)}"
        _check_identifier(name)
        # UTF8 whatever the cluster default, as a deployment for Cyrillic mail must be.
        self.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        _check_identifier(name)
        # WITH (FORCE) (PostgreSQL 13+): a connection a failed test left open must not make
        # the cleanup fail too.
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, password: str) -> None:
        """A login role that must authenticate with ``password`` (scram-sha-256)."""
        _check_identifier(name)
        from psycopg2 import sql

        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(
                    sql.Identifier(name)), (password,))
        finally:
            connection.close()


def start_postgres(
    directory: Path,
    *,
    bin_dir: Path | None = None,
    startup_timeout: float = 30.0,
    max_connections: int = 50,
) -> PostgresServer:
    """``initdb`` into ``directory`` and start PostgreSQL there; return once it accepts logins.

    ``directory`` must be new or empty; it is given to the ``postgres`` OS user and made 0700
    (PostgreSQL insists on that for its data directory). Use ``tempfile.mkdtemp()``, not
    pytest's ``tmp_path``: that one sits under a root-only 0700 directory the ``postgres``
    user cannot enter. Must run as root (the server refuses to run as root, so it is started
    as ``postgres``).

    Raises RuntimeError: :data:`MISSING_MESSAGE` when the binaries are missing, otherwise
    with the tail of the server's log.
    """
    bin_dir = Path(bin_dir) if bin_dir is not None else find_postgres_binaries()
    if bin_dir is None or not (bin_dir / "postgres").is_file():
        raise RuntimeError(MISSING_MESSAGE)
    try:
        account = pwd.getpwnam(OS_USER)
    except KeyError:
        raise RuntimeError(
            f"system user {OS_USER!r} is missing; the postgresql-common package creates it. "
            + MISSING_MESSAGE
        ) from None
    if os.geteuid() != 0:
        raise RuntimeError("start_postgres must run as root (it starts the server as postgres)")

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, account.pw_uid, account.pw_gid)
    directory.chmod(0o700)
    _check_searchable(directory, account)
    data_dir = directory / "data"
    socket_dir = directory / "socket"
    socket_dir.mkdir(exist_ok=True)
    os.chown(socket_dir, account.pw_uid, account.pw_gid)
    log_file = directory / "postgres.log"

    as_postgres: dict[str, Any] = {
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],  # drop root's supplementary groups too
        "cwd": directory,
        # A minimal environment: root's HOME, PG* variables or locale must not leak in.
        "env": {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
                "HOME": str(directory)},
    }
    initdb = subprocess.run(
        [
            str(bin_dir / "initdb"), "-D", str(data_dir), "-U", SUPERUSER,
            "--encoding=UTF8",
            # C.UTF-8 rather than C: with the C locale lower()/ILIKE fold ASCII only, which
            # would hide (or fake) bugs with Cyrillic text that a real cluster shows.
            "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256",
            "--no-sync",  # a throwaway cluster: skip the fsync of every new file
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
        **as_postgres,
    )
    if initdb.returncode != 0:
        raise RuntimeError(
            f"initdb failed ({initdb.returncode}):\n"
            + (initdb.stdout + initdb.stderr).decode("utf-8", "replace")[-4000:]
        )
    # pg_hba.conf is read top-down, first match wins: the superuser is trusted on loopback,
    # every other role must give its password.
    hba = data_dir / "pg_hba.conf"
    hba.write_text(
        "local all all trust\n"
        f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    os.chown(hba, account.pw_uid, account.pw_gid)

    # A port found free can be taken by someone else before the server binds it; retry then.
    last_error: RuntimeError | None = None
    for _attempt in range(3):
        port = free_port()
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"), "-D", str(data_dir), "-k", str(socket_dir),
                    "-h", "127.0.0.1", "-p", str(port),
                    # Speed over durability: the cluster dies with the session.
                    "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off",
                    # Many short-lived test databases; don't let the checkpointer or
                    # autovacuum compete with the tests.
                    "-c", "autovacuum=off",
                    "-c", f"max_connections={max_connections}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Own process group, so Ctrl-C goes to pytest (which stops us in teardown)
                # and stop() can kill the backends by group if the postmaster hangs.
                start_new_session=True,
                preexec_fn=die_with_parent,
                close_fds=True,
                **as_postgres,
            )
        server = PostgresServer(
            directory=directory, bin_dir=bin_dir, process=process, port=port,
            socket_dir=socket_dir, log_file=log_file,
        )
        try:
            _wait_until_ready(server, startup_timeout)
        except RuntimeError as error:
            server.stop()
            last_error = error
            if "already in use" in server.log_tail(20):
                continue
            raise
        return server
    assert last_error is not None
    raise last_error


def _wait_until_ready(server: PostgresServer, timeout: float) -> None:
    """Return once a login over TCP succeeds (the port opens before recovery is finished)."""
    deadline = time.monotonic() + timeout
    while True:
        if not server.is_running():
            raise RuntimeError(
                f"postgres exited with {server._process.returncode} during start-up; "
                f"its log ends:\n{server.log_tail()}"
            )
        ready = subprocess.run(
            [str(server.bin_dir / "pg_isready"), "-q", "-h", server.host, "-p",
             str(server.port), "-U", SUPERUSER, "-d", "postgres", "-t", "2"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if ready.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"postgres did not accept connections on {server.host}:{server.port} within "
                f"{timeout:.0f}s; its log ends:\n{server.log_tail()}"
            )
        time.sleep(0.05)


def _check_identifier(name: str) -> None:
    # Database and role names go into SQL by quoting; keep them to a plain, safe alphabet.
    if not name or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise ValueError(f"not a plain identifier: {name!r}")


def _check_searchable(directory: Path, account: pwd.struct_passwd) -> None:
    """Fail early, with a sentence, if the postgres user cannot reach ``directory``."""
    for parent in directory.parents:
        mode = parent.stat().st_mode
        owner = parent.stat().st_uid
        if not (mode & 0o001 or (owner == account.pw_uid and mode & 0o100)):
            raise RuntimeError(
                f"{parent} is not searchable by the {OS_USER!r} user, so PostgreSQL cannot "
                f"use {directory}; use a directory under /tmp (tempfile.mkdtemp())"
            )

