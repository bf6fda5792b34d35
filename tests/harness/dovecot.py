"""A private Dovecot 2.3 instance (IMAP, IMAPS, POP3, POP3S) for tests.

:func:`start_dovecot` writes a self-contained configuration into a directory and runs
``dovecot -F -c FILE`` as a child process; the system Dovecot service and ``/etc/dovecot`` are
never used. Mail users live in passwd-files and all map to one unprivileged system uid
(``nobody``), so :meth:`DovecotServer.create_user` works immediately without touching the
system user database.

Two listen addresses give the two security situations a real user meets:

* ``127.0.0.1``: Dovecot treats a connection whose remote IP equals its local IP as
  "secured", so plaintext LOGIN/USER+PASS is accepted without TLS (like a server on
  localhost).
* ``127.0.0.2`` (:attr:`DovecotServer.tls_required_host`): Linux picks 127.0.0.1 as the source
  address for it, so remote IP != local IP, the connection is not secured, and plaintext
  authentication is refused until STARTTLS/STLS, like a remote server with the default
  ``disable_plaintext_auth = yes``.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.harness import (
    can_bind,
    die_with_parent,
    free_ports,
    port_answers,
    tail,
    terminate_process_group,
)
from tests.harness.certs import TestPKI

__all__ = [
    "DOVECOT_BINARY",
    "DovecotServer",
    "MailUser",
    "StoredMessage",
    "start_dovecot",
]

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
"""Where the Debian packages install the Dovecot master binary."""

MISSING_MESSAGE = "Dovecot is not installed: apt-get install dovecot-imapd dovecot-pop3d"

MAIL_DOMAIN = "example.test"

# RFC 7919 ffdhe2048 group. Dovecot 2.3 wants ssl_dh for DHE cipher suites; generating
# parameters takes seconds to minutes, and a well-known group is what production uses anyway.
FFDHE2048_PEM = """\
-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_LIST_LINE = re.compile(rb'^\((?P<attrs>[^)]*)\) (?P<sep>"[^"]*"|NIL) (?P<name>.*)$')


@dataclass(frozen=True)
class MailUser:
    """A mailbox on the test Dovecot. ``address`` is ``login@example.test``."""

    login: str
    password: str
    address: str


@dataclass(frozen=True)
class StoredMessage:
    """One message as stored by Dovecot, read without changing its flags.

    ``flags`` holds the stored flags (``\\Seen``, ``\\Answered``, keywords...), never the
    session-only ``\\Recent``. ``raw`` has CRLF line endings whatever was delivered.
    """

    uid: int
    flags: set[str]
    raw: bytes


class DovecotServer:
    """A running private Dovecot; made by :func:`start_dovecot`, ended by :meth:`stop`.

    The helper methods talk IMAP to the server itself (over 127.0.0.1, AUTHENTICATE PLAIN),
    like another mail client of the same user would, so Dovecot's indexes always stay
    consistent with what the code under test sees.
    """

    host: str = "127.0.0.1"
    tls_required_host: str | None = "127.0.0.2"

    def __init__(
        self,
        *,
        directory: Path,
        pki: TestPKI,
        process: subprocess.Popen[bytes],
        imap_port: int,
        imaps_port: int,
        pop3_port: int,
        pop3s_port: int,
        tls_required_host: str | None,
        users_dir: Path,
        log_file: Path,
    ) -> None:
        self.directory = directory
        self.pki = pki
        self.imap_port = imap_port
        """Plain IMAP offering STARTTLS."""
        self.imaps_port = imaps_port
        """IMAP over implicit TLS."""
        self.pop3_port = pop3_port
        """Plain POP3 offering STLS."""
        self.pop3s_port = pop3s_port
        """POP3 over implicit TLS."""
        self.tls_required_host = tls_required_host
        self.users_dir = users_dir
        """One passwd-file per user lives here."""
        self.log_file = log_file
        self._process = process
        self._lock = threading.Lock()
        self._counter = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """PID of the Dovecot master process this harness started."""
        return self._process.pid

    def is_running(self) -> bool:
        """True while the Dovecot master process is alive."""
        return self._process.poll() is None

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM, then SIGKILL) and reap it. Safe to call twice."""
        terminate_process_group(self._process)

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of Dovecot's log (for failure messages)."""
        return tail(self.log_file, lines)

    # -- users -----------------------------------------------------------------------------

    def create_user(self, login: str | None = None, password: str | None = None) -> MailUser:
        """Add a mail user (a passwd-file of its own); it can log in at once.

        Without ``login`` a unique one is made. Without ``password`` a random one is made.
        A password may be any text without ``:`` or line breaks (the passwd-file format).
        """
        with self._lock:
            self._counter += 1
            if login is None:
                login = f"user{self._counter}-{secrets.token_hex(3)}"
            if password is None:
                password = secrets.token_urlsafe(12)
            for value, what in ((login, "login"), (password, "password")):
                if ":" in value or "\n" in value or "\r" in value:
                    raise ValueError(f"{what} must not contain ':' or line breaks: {value!r}")
            # One passwd-file per user: Dovecot re-checks a passwd-file at most once a second,
            # so a user appended to a shared file could be "unknown" for up to a second, while
            # a file it has never seen is read on first lookup.
            # Dovecot's default auth_username_format (%Lu) lower-cases logins before lookup,
            # so logins are case-insensitive, as on most real servers.
            key = login.lower()
            if key in (".", "..") or "/" in key or not key.strip():
                raise ValueError(f"login must be usable as a file name: {login!r}")
            user_file = self.users_dir / key
            if user_file.exists():
                raise ValueError(f"user {login!r} already exists")
            user_file.write_text(f"{key}:{{PLAIN}}{password}\n", encoding="utf-8")
        return MailUser(login=login, password=password, address=f"{login}@{MAIL_DOMAIN}")

    # -- mailbox helpers -------------------------------------------------------------------

    def deliver(
        self,
        user: MailUser,
        raw: bytes,
        *,
        seen: bool = False,
        folder: str = "INBOX",
        internal_date: datetime | None = None,
    ) -> int:
        """Store ``raw`` in ``folder`` (created if missing) by IMAP APPEND; return its UID.

        ``seen=True`` stores it already read. Bare LF line endings are turned into CRLF.
        ``folder`` is sent as given: ASCII (or already modified-UTF-7), and the hierarchy
        separator is ``.`` (Dovecot's Maildir default), so ``"A/B"`` is refused; use ``"A.B"``.
        """
        with self._imap(user) as imap:
            mailbox = _quote(folder)
            if folder.upper() != "INBOX":
                typ, data = imap.create(mailbox)
                if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(_bytes(d) for d in data):
                    raise RuntimeError(f"CREATE {folder!r} failed: {data!r}")
                imap.subscribe(mailbox)
            date = imaplib.Time2Internaldate(internal_date) if internal_date else None
            typ, data = imap.append(mailbox, "(\\Seen)" if seen else None, date, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND to {folder!r} failed: {data!r}")
            match = _APPENDUID.search(_bytes(data[0]))
            if match is None:
                raise RuntimeError(f"APPEND gave no APPENDUID: {data!r}")
            return int(match.group(1))

    def mark_seen(
        self, user: MailUser, uids: list[int] | None = None, folder: str = "INBOX"
    ) -> None:
        """Set ``\\Seen`` on ``uids`` (all messages when None), as webmail would."""
        self.set_flags(user, ["\\Seen"], uids, folder=folder)

    def set_flags(
        self,
        user: MailUser,
        flags: list[str],
        uids: list[int] | None = None,
        *,
        folder: str = "INBOX",
        add: bool = True,
    ) -> None:
        """Add (or with ``add=False`` remove) ``flags`` on ``uids`` (all when None)."""
        with self._imap(user) as imap:
            typ, data = imap.select(_quote(folder))
            if typ != "OK":
                raise RuntimeError(f"SELECT {folder!r} failed: {data!r}")
            if uids is not None and not uids:
                return
            if uids is None and int(data[0] or 0) == 0:
                return  # "1:*" on an empty mailbox is an error, and there is nothing to do
            uid_set = "1:*" if uids is None else ",".join(str(uid) for uid in uids)
            action = "+FLAGS.SILENT" if add else "-FLAGS.SILENT"
            typ, data = imap.uid("STORE", uid_set, action, f"({' '.join(flags)})")
            if typ != "OK":
                raise RuntimeError(f"UID STORE failed: {data!r}")

    def messages(self, user: MailUser, folder: str = "INBOX") -> list[StoredMessage]:
        """Return every message in ``folder`` by UID order, without changing any flag.

        The mailbox is opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK[].
        """
        with self._imap(user) as imap:
            typ, data = imap.select(_quote(folder), readonly=True)
            if typ != "OK":
                raise RuntimeError(f"EXAMINE {folder!r} failed: {data!r}")
            if int(data[0] or 0) == 0:
                return []
            typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            if typ != "OK":
                raise RuntimeError(f"UID FETCH failed: {data!r}")
        return sorted(_parse_fetch(data), key=lambda message: message.uid)

    def delete_folder(self, user: MailUser, folder: str) -> None:
        """Delete ``folder`` and its messages; a later :meth:`deliver` to it makes it anew
        under a new UIDVALIDITY (a renumbered folder, as a server restored from backup)."""
        with self._imap(user) as imap:
            typ, data = imap.delete(_quote(folder))
            if typ != "OK":
                raise RuntimeError(f"DELETE {folder!r} failed: {data!r}")

    def folder_names(self, user: MailUser) -> list[str]:
        """Return the names of all of the user's folders as LIST reports them."""
        with self._imap(user) as imap:
            typ, data = imap.list()
            if typ != "OK":
                raise RuntimeError(f"LIST failed: {data!r}")
        names = []
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):
                # A name sent as a literal: the literal is the name.
                names.append(item[1].decode("utf-8", "replace"))
                continue
            match = _LIST_LINE.match(item)
            if match is None:
                raise RuntimeError(f"cannot parse LIST line {item!r}")
            names.append(_unquote(match.group("name")))
        return names

    @contextlib.contextmanager
    def _imap(self, user: MailUser) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        # imaplib writes an APPEND literal and its closing CRLF separately; with Nagle's
        # algorithm and delayed ACKs that costs ~40 ms per message.
        imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            credentials = f"\0{user.login}\0{user.password}".encode()
            # AUTHENTICATE PLAIN rather than LOGIN: imaplib sends LOGIN arguments as ASCII only,
            # and a test may well use a non-ASCII password.
            imap.authenticate("PLAIN", lambda _challenge: credentials)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()


def start_dovecot(
    directory: Path,
    pki: TestPKI,
    *,
    binary: Path | None = None,
    startup_timeout: float = 10.0,
    oauth_introspection_url: str | None = None,
    oauth_scope: str = "mail",
    reuse_login_processes: bool = False,
) -> DovecotServer:
    """Write a config into ``directory`` and start Dovecot; return once every port answers.

    ``directory`` (and its parents) must be searchable by the unprivileged mail uid, because
    the mail processes read the users' homes in it: use ``tempfile.mkdtemp()`` under /tmp, not
    pytest's 0700 ``tmp_path``. It is chmod-ed 0755 here. Must run as root (Dovecot switches
    to the ``dovecot``, ``dovenull`` and ``nobody`` users).

    With ``oauth_introspection_url`` the XOAUTH2 and OAUTHBEARER mechanisms are offered too,
    checked by an ``oauth2`` passdb that asks that RFC 7662 introspection endpoint (see
    ``tests/harness/oauth_server.py``) whether a token is active, whose it is and whether it
    carries ``oauth_scope``; passwords still go to the passwd-files.

    ``reuse_login_processes``: Dovecot's "high-performance" login mode (one login process
    serves many connections, as busy servers are set up) instead of its default of a fresh
    process, with fresh TLS session-ticket keys, per connection: benchmarks, and TLS session
    resumption, which only a reused process can grant.

    Raises RuntimeError with the tail of Dovecot's log if it does not come up.
    """
    binary = Path(binary) if binary is not None else DOVECOT_BINARY
    if not binary.exists():
        raise RuntimeError(MISSING_MESSAGE)
    if os.geteuid() != 0:
        raise RuntimeError("start_dovecot must run as root (Dovecot drops to its own users)")
    for user in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise RuntimeError(
                f"system user {user!r} is missing; it is created by the dovecot-core package. "
                + MISSING_MESSAGE
            ) from None

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    _check_searchable(directory)

    mail_user = pwd.getpwnam("nobody")
    home_root = directory / "home"
    home_root.mkdir(exist_ok=True)
    os.chown(home_root, mail_user.pw_uid, mail_user.pw_gid)
    home_root.chmod(0o755)
    users_dir = directory / "users"
    users_dir.mkdir(exist_ok=True)
    dh_file = directory / "dh.pem"
    dh_file.write_text(FFDHE2048_PEM)
    log_file = directory / "dovecot.log"
    oauth_file = None
    if oauth_introspection_url:
        oauth_file = directory / "dovecot-oauth2.conf.ext"
        oauth_file.write_text(_oauth2_text(oauth_introspection_url, oauth_scope))
        oauth_file.chmod(0o600)  # holds the resource server's introspection password

    tls_required_host = "127.0.0.2" if can_bind("127.0.0.2") else None
    hosts = ["127.0.0.1"] + ([tls_required_host] if tls_required_host else [])

    # A port found free can be taken by someone else before Dovecot binds it; retry then.
    last_error: RuntimeError | None = None
    for _attempt in range(3):
        ports = free_ports(4, hosts)
        config = directory / "dovecot.conf"
        config.write_text(
            _config_text(
                directory=directory,
                pki=pki,
                hosts=hosts,
                ports=ports,
                users_dir=users_dir,
                dh_file=dh_file,
                log_file=log_file,
                home_root=home_root,
                uid=mail_user.pw_uid,
                gid=mail_user.pw_gid,
                oauth_file=oauth_file,
                reuse_login_processes=reuse_login_processes,
            )
        )
        stderr_file = directory / "dovecot.stderr"
        with stderr_file.open("wb") as stderr:
            process = subprocess.Popen(
                [str(binary), "-F", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                # Own process group: Ctrl-C in the terminal goes to pytest, which stops us in
                # teardown, and stop() can clean up straggling children by group.
                start_new_session=True,
                preexec_fn=die_with_parent,
                close_fds=True,
            )
        server = DovecotServer(
            directory=directory,
            pki=pki,
            process=process,
            imap_port=ports[0],
            imaps_port=ports[1],
            pop3_port=ports[2],
            pop3s_port=ports[3],
            tls_required_host=tls_required_host,
            users_dir=users_dir,
            log_file=log_file,
        )
        try:
            _wait_ready(server, hosts, startup_timeout, stderr_file)
        except RuntimeError as error:
            terminate_process_group(process)
            last_error = error
            if "Address already in use" in str(error):
                continue
            raise
        return server
    assert last_error is not None
    raise last_error


def _config_text(
    *,
    directory: Path,
    pki: TestPKI,
    hosts: list[str],
    ports: list[int],
    users_dir: Path,
    dh_file: Path,
    log_file: Path,
    home_root: Path,
    uid: int,
    gid: int,
    oauth_file: Path | None = None,
    reuse_login_processes: bool = False,
) -> str:
    listen = ", ".join(hosts)
    imap_port, imaps_port, pop3_port, pop3s_port = ports
    mechanisms = "plain login" + (" xoauth2 oauthbearer" if oauth_file else "")
    oauth_passdb = f"""
# Bearer tokens (XOAUTH2, OAUTHBEARER) are checked by the test authorization server.
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {oauth_file}
}}
""" if oauth_file else ""
    # Dovecot's "high-performance" login mode: a login process serves many clients.
    login_mode = ("\n  service_count = 0\n  process_min_avail = 1\n  client_limit = 1000"
                  if reuse_login_processes else "")
    return f"""\
# Written by tests/harness/dovecot.py for one test session. Dovecot 2.3 syntax.
instance_name = eddymail-test-{directory.name}
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {log_file}
info_log_path = {log_file}
protocols = imap pop3
listen = {listen}

ssl = yes
ssl_cert = <{pki.server_cert}
ssl_key = <{pki.server_key}
ssl_dh = <{dh_file}

# The default, spelled out: plaintext auth only on secured connections (TLS, or
# remote IP == local IP, which is why 127.0.0.1 allows it and 127.0.0.2 does not).
# (2.4 renamed this auth_allow_cleartext; the 2.4 name is an error in 2.3.)
disable_plaintext_auth = yes
auth_mechanisms = {mechanisms}
# Failed logins answer after ~0.5 s instead of 2 s; see also the anvil listener below.
auth_failure_delay = 0
auth_verbose = yes

# All virtual users map to one unprivileged uid; Dovecot refuses uids outside this range,
# and only says so when a mailbox is opened, after a LOGIN that looked successful.
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
# Tests open many connections for the same user from one IP (default limit: 10).
mail_max_userip_connections = 1000

passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {users_dir}/%u
}}
{oauth_passdb}userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home_root}/%u
}}

service imap-login {{{login_mode}
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{{login_mode}
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = {pop3s_port}
    ssl = yes
  }}
}}
# Without this socket the auth process cannot reach anvil's penalty tracker and disables
# the per-IP auth penalty (2 s doubling up to 15 s after failures), which would otherwise
# make the login following a wrong-password test slow.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _oauth2_text(introspection_url: str, scope: str) -> str:
    return f"""\
# Written by tests/harness/dovecot.py: validate bearer tokens by RFC 7662 introspection.
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
scope = {scope}
timeout_msecs = 10000
"""


def _wait_ready(
    server: DovecotServer, hosts: list[str], timeout: float, stderr_file: Path
) -> None:
    """Wait until every port accepts and the plain ports send their greeting."""
    deadline = time.monotonic() + timeout
    pending = [
        (host, port, greeting)
        for host in hosts
        for port, greeting in (
            (server.imap_port, b"* OK"),
            (server.imaps_port, None),
            (server.pop3_port, b"+OK"),
            (server.pop3s_port, None),
        )
    ]
    while pending:
        if server._process.poll() is not None:
            raise RuntimeError(_failure("Dovecot exited during startup", server, stderr_file))
        if time.monotonic() > deadline:
            raise RuntimeError(
                _failure(f"Dovecot did not answer on {pending} in {timeout} s", server,
                         stderr_file)
            )
        host, port, greeting = pending[0]
        if port_answers(host, port, greeting):
            pending.pop(0)
        else:
            time.sleep(0.02)


def _failure(summary: str, server: DovecotServer, stderr_file: Path) -> str:
    stderr = stderr_file.read_text(errors="replace").strip() if stderr_file.exists() else ""
    return (
        f"{summary} (exit code {server._process.poll()}).\n"
        f"--- stderr ---\n{stderr}\n--- last lines of {server.log_file} ---\n"
        f"{server.log_tail()}"
    )


def _check_searchable(directory: Path) -> None:
    for parent in [directory, *directory.parents]:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(
                f"{parent} is not searchable by other users (mode "
                f"{oct(parent.stat().st_mode & 0o777)}); Dovecot's mail processes run as "
                f"'nobody' and must reach {directory}. Use tempfile.mkdtemp() under /tmp."
            )


def _quote(mailbox: str) -> str:
    # imaplib sends mailbox arguments verbatim, so names with spaces must be quoted here.
    escaped = mailbox.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _unquote(name: bytes) -> str:
    if name.startswith(b'"') and name.endswith(b'"'):
        name = re.sub(rb"\\(.)", rb"\1", name[1:-1])
    return name.decode("utf-8", "replace")


def _bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, tuple):
        return b" ".join(_bytes(part) for part in item)
    return str(item).encode()


def _parse_fetch(data: list[object]) -> Iterator[StoredMessage]:
    """Turn imaplib's FETCH result into messages.

    imaplib returns ``(b'1 (UID 5 FLAGS (\\Seen) BODY[] {42}', body)`` tuples followed by a
    ``b')'`` (or ``b' FLAGS (...))'`` when the server puts items after the literal).
    """
    current: tuple[bytes, bytes] | None = None
    for item in data:
        if isinstance(item, tuple):
            if current is not None:
                yield _message(*current)
            current = (item[0], item[1])
        elif isinstance(item, bytes) and current is not None:
            current = (current[0] + b" " + item, current[1])
    if current is not None:
        yield _message(*current)


def _message(meta: bytes, body: bytes) -> StoredMessage:
    uid = _FETCH_UID.search(meta)
    flags = _FETCH_FLAGS.search(meta)
    if uid is None or flags is None:
        raise RuntimeError(f"cannot parse FETCH response {meta!r}")
    return StoredMessage(
        uid=int(uid.group(1)),
        # \Recent is a per-session marker, not a stored flag; leaving it out lets tests
        # compare flags exactly (e.g. ``== set()`` for unread, untouched mail).
        flags={flag.decode() for flag in flags.group(1).split()} - {"\\Recent"},
        raw=body,
    )

