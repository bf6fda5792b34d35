"""Channel passwords: in the OS keyring, or from a channel's ``password_command``.

Nothing here ever writes a secret anywhere but the keyring, and no message raised from here
contains one (nor a password command's output, which may be the secret itself).

A password is handed out only for a ``with`` block (``password_in_use``). While the block
runs, the password is scrubbed from every log line and error text, even where the caller did
not name it; an exception leaving the block carries it along, so the report of that error is
scrubbed too. After that the process keeps no copy: a long ``fetch`` or a process embedding
eddymail does not collect every password it ever used.

Besides the password (keyring user = the channel's name), a channel signing in with OAuth 2.0
has entries of its own, named by :func:`entry_name` (``NAME:oauth-tokens``, and
``NAME:oauth-client-secret`` from earlier versions); they move and go with the channel. The
client secret of an app registration is shared by its channels (see
``services/oauth/store.registration_entry``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from eddymail.errors import KeyringUnavailableError, SecretError
from eddymail.patterns import LazyPattern

# subprocess, signal and select (a password command), base64 (a scrub of encoded secrets)
# and getpass are imported where they are used: a run that reads no password loads none.
if TYPE_CHECKING:
    import subprocess

# keyring is imported inside the functions that use it: with its backends and their
# dependencies it costs more than the rest of a mail server's ``ingest`` run, which never
# needs a password.
KEYRING_SERVICE = "eddymail"
# Seconds a password command may take; read at every call, so tests and embedders can
# lower it. A command that asks a hardware token may need a while, one that hangs must not
# hold the cron run (and its lock) for ever.
PASSWORD_COMMAND_TIMEOUT = 20.0
# The longest first line taken from a password command: more than any password, and read
# while it arrives, so a command that floods its output never fills the memory.
PASSWORD_COMMAND_MAX_OUTPUT = 4 * 1024

NO_KEYRING_FIX = (
    "No usable keyring backend here (a headless server or cron has no desktop keyring). "
    "Give the channel a password command: eddymail channel edit NAME --password-command "
    "'pass show mail/NAME', or set PYTHON_KEYRING_BACKEND to a backend that works without "
    "a desktop session."
)

PROMPT_WITHOUT_TERMINAL = (
    "The keyring ({backend}) asks for its own password (to unlock its file), and there "
    "is no terminal to type it in (cron, a pipe, a service)."
)
PROMPT_FIX = (
    "Under cron use a backend that needs no password (keyrings.alt.file.PlaintextKeyring) or "
    "a password command (eddymail channel edit NAME --password-command '...'); see "
    "\"Passwords on a headless server\" in the README."
)

# Backends that keep the secret readable on disk; `channel test` reports them as insecure.
INSECURE_BACKENDS = ("PlaintextKeyring",)

# The secrets in use right now, one entry per use (a password may be in use twice at once),
# so that last-resort scrubbing (log lines, the error log, tracebacks) finds them even where
# the caller did not say which secret to look for. An entry leaves when its use ends.
_in_use: list[str] = []
_in_use_lock = threading.Lock()
# Where an exception that left a ``with`` block keeps the secrets in use there.
_CARRIED = "_eddymail_secrets"
_BASE64_TOKEN = LazyPattern(r"[A-Za-z0-9+/]{4,}={0,2}")
SHORT_SECRET = 8


class PasswordSource(NamedTuple):
    """Where a channel's password comes from: the keyring entry or a command to run."""

    channel_name: str
    command: Sequence[str] | None = None


#: The keyring entries a channel may have besides its password, by purpose.
CHANNEL_ENTRIES = ("oauth-tokens", "oauth-client-secret")


def entry_name(channel_name: str, purpose: str) -> str:
    """The keyring user of a channel's ``purpose`` entry (one of ``CHANNEL_ENTRIES``)."""
    return f"{channel_name}:{purpose}"


def read_secret(entry: str) -> str | None:
    """The keyring entry ``entry``, or None when there is none. Use it inside ``in_use``."""
    import keyring

    with _keyring_errors():
        secret = keyring.get_password(KEYRING_SERVICE, entry)
    return secret or None


def store_password(channel_name: str, password: str) -> None:
    """Put a channel's password into the keyring. Raises ``SecretError``."""
    import keyring

    if not password:
        raise SecretError("The password is empty; nothing was stored.", hint=None)
    with _keyring_errors():
        keyring.set_password(KEYRING_SERVICE, channel_name, password)


def delete_password(channel_name: str) -> bool:
    """Remove a channel's keyring entry; False when there was none or no keyring exists."""
    import keyring.errors

    try:
        keyring.delete_password(KEYRING_SERVICE, channel_name)
    except (keyring.errors.PasswordDeleteError, keyring.errors.NoKeyringError, ImportError):
        return False
    except keyring.errors.KeyringError as error:
        raise SecretError(f"The keyring refused to delete the password: {error}.") from None
    return True


def rename_password(old_name: str, new_name: str) -> None:
    """Move a keyring entry when a channel is renamed (no-op when there is none)."""
    import keyring

    with _keyring_errors():
        secret = keyring.get_password(KEYRING_SERVICE, old_name)
    if secret is not None:
        store_password(new_name, secret)
        delete_password(old_name)


def rename_channel_secrets(old_name: str, new_name: str) -> None:
    """Move a renamed channel's password and its other entries (those that exist)."""
    rename_password(old_name, new_name)
    for purpose in CHANNEL_ENTRIES:
        rename_password(entry_name(old_name, purpose), entry_name(new_name, purpose))


def delete_channel_secrets(channel_name: str) -> None:
    """Remove a channel's password and its other entries (those that exist)."""
    delete_password(channel_name)
    for purpose in CHANNEL_ENTRIES:
        delete_password(entry_name(channel_name, purpose))


def has_keyring_password(channel_name: str) -> bool:
    """Whether the keyring holds a password for the channel (False without a keyring)."""
    import keyring.errors

    try:
        with _keyring_errors():
            return keyring.get_password(KEYRING_SERVICE, channel_name) is not None
    except SecretError:
        return False


@contextlib.contextmanager
def password_in_use(source: PasswordSource) -> Iterator[str]:
    """The channel's password, for the ``with`` block only (see ``in_use``).

    Raises ``SecretError`` with a sentence saying what to do when it cannot be read.
    """
    with in_use(_read_password(source)) as secret:
        yield secret


def _read_password(source: PasswordSource) -> str:
    if source.command:
        return run_password_command(source.channel_name, source.command)
    import keyring

    with _keyring_errors():
        secret = keyring.get_password(KEYRING_SERVICE, source.channel_name)
    if secret is None:
        raise SecretError(
            f"No password is stored for channel '{source.channel_name}' in the keyring "
            f"({_backend_label()}): run eddymail channel password {source.channel_name}. "
            "Cron and ssh sessions may see another keyring than your desktop does."
        )
    return secret


def run_password_command(
    channel_name: str, argv: Sequence[str], timeout: float | None = None
) -> str:
    """Run ``argv`` (no shell) and return the first line of its output.

    Only the first line is read, and at most ``PASSWORD_COMMAND_MAX_OUTPUT`` bytes of it:
    ``pass show`` prints the password and then notes, and a command that floods its output
    (``yes``, a wrong file) must not fill the memory. The line end (LF or CR LF) is not
    part of the password. The output is the secret: it never appears in an exception, a log
    or stderr of ours, and neither does the command's own stderr (a failing ``pass`` may
    print what it decrypted), which goes nowhere. A command that outlives ``timeout``
    (default ``PASSWORD_COMMAND_TIMEOUT``) is killed with everything it started.
    """
    import signal
    import subprocess

    what = f"The password command of channel '{channel_name}'"
    limit = PASSWORD_COMMAND_TIMEOUT if timeout is None else timeout
    try:
        # A session of its own: on timeout the whole group is killed, or a grandchild
        # (sh -c 'sleep 100; ...') would keep the pipe open and the wait would never end.
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except FileNotFoundError:
        raise SecretError(f"{what} ({argv[0]}) was not found.") from None
    except PermissionError:
        raise SecretError(f"{what} ({argv[0]}) is not executable.") from None
    except OSError as error:
        raise SecretError(f"{what} could not be started: {error.strerror}.") from None
    deadline = time.monotonic() + limit
    try:
        line = _first_line(process, deadline, what)
        assert process.stdout is not None
        process.stdout.close()  # the rest is never read: a writer that goes on gets SIGPIPE
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(process)
        raise SecretError(
            f"{what} did not finish within {limit:g} seconds and was stopped.",
            hint="Run the command by hand: it may be waiting for a passphrase or a token "
            "that nobody can give it under cron.",
        ) from None
    except SecretError:
        _kill_group(process)
        raise
    # Killed by SIGPIPE: it went on writing after the first line, which is all we wanted.
    if process.returncode not in (0, -signal.SIGPIPE):
        raise SecretError(f"{what} failed with exit code {process.returncode}.",
                          hint="Run the command by hand to see its own message.")
    if not line:
        raise SecretError(f"{what} printed nothing.")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what} printed something that is not UTF-8 text.") from None


def _first_line(process: subprocess.Popen[bytes], deadline: float, what: str) -> bytes:
    """The command's first output line without its line end; reads no more than it needs.

    Raises ``subprocess.TimeoutExpired`` at ``deadline``, ``SecretError`` when the first line
    is longer than ``PASSWORD_COMMAND_MAX_OUTPUT``.
    """
    import select
    import subprocess

    assert process.stdout is not None
    descriptor = process.stdout.fileno()
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([descriptor], [], [], remaining)[0]:
            raise subprocess.TimeoutExpired(process.args, 0)
        chunk = os.read(descriptor, PASSWORD_COMMAND_MAX_OUTPUT + 1 - len(data))
        if not chunk:  # end of output without a line end
            return data.removesuffix(b"\r")
        data += chunk
        end = data.find(b"\n")
        if end >= 0:
            return data[:end].removesuffix(b"\r")
        if len(data) > PASSWORD_COMMAND_MAX_OUTPUT:
            raise SecretError(f"{what} printed more than {PASSWORD_COMMAND_MAX_OUTPUT} bytes "
                              "without a line end; that is not a password.")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a timed-out command and everything it started; reap it and close its pipes."""
    import signal
    import subprocess

    # The group id cannot have been reused: the leader is not reaped yet, or (if it was)
    # the grandchildren holding the pipe still belong to the group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=5)


# --- scrubbing ---------------------------------------------------------------------------


@contextlib.contextmanager
def in_use(secret: str) -> Iterator[str]:
    """Scrub ``secret`` from every log line and error text while the ``with`` block runs.

    An exception leaving the block takes the secret along (``carried_by``), so that the one
    place reporting it (the CLI, a log record with its traceback) can still scrub it; when
    the exception is gone, so is the secret. Nothing is kept after the block.
    """
    if not secret:
        yield secret
        return
    with _in_use_lock:
        _in_use.append(secret)
    try:
        yield secret
    except BaseException as error:
        _carry(error, secret)
        raise
    finally:
        with _in_use_lock:
            _in_use.remove(secret)


def _carry(error: BaseException, secret: str) -> None:
    carried = getattr(error, _CARRIED, ())
    # An exception type that takes no attributes cannot carry it: what reports it is then
    # scrubbed only of the secrets its handler names.
    with contextlib.suppress(AttributeError, TypeError):
        setattr(error, _CARRIED, (*carried, secret))


def carried_by(error: BaseException | None) -> list[str]:
    """The secrets that were in use where ``error`` (or an error it chains to) was raised."""
    found: list[str] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found.extend(getattr(error, _CARRIED, ()))
        error = error.__cause__ or error.__context__
    return found


def scrub(text: str, secrets: Iterable[str] = (), replacement: str = "[redacted]") -> str:
    """``text`` without ``secrets`` nor any secret in use right now (see ``in_use``).

    Also caught: a secret inside any base64 token, which is how AUTH PLAIN
    (``\\0login\\0password``, whatever the login), AUTH LOGIN and the bearer mechanisms
    (``user=...\\x01auth=Bearer TOKEN\\x01\\x01``) put it on the wire and how servers
    sometimes echo it back.
    """
    with _in_use_lock:
        in_use_now = tuple(_in_use)
    known = {secret for secret in (*secrets, *in_use_now) if secret}
    if not known or not text:
        return text
    for secret in sorted(known, key=len, reverse=True):
        if len(secret) >= SHORT_SECRET:
            text = text.replace(secret, replacement)
        else:
            # A short password is likely to occur inside ordinary words ("x" in a host
            # name); scrub it where it stands alone.
            text = re.sub(rf"(?<![\w.-]){re.escape(secret)}(?![\w.-])", replacement, text)
    import base64
    import binascii

    encoded = [secret.encode("utf-8") for secret in known]

    def hide(match: re.Match[str]) -> str:
        token = match.group(0)
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return token
        # An ordinary word decodes to noise; an AUTH blob to text and NULs (PLAIN) or
        # ^A separators (XOAUTH2, OAUTHBEARER).
        if not decoded.replace("\0", "").replace("\x01", "").isprintable():
            return token
        raw = decoded.encode("utf-8")
        return replacement if any(secret in raw for secret in encoded) else token

    return _BASE64_TOKEN.sub(hide, text)


class ScrubbingFormatter(logging.Formatter):
    """A log formatter whose lines (tracebacks included) pass through ``scrub``."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, without a secret in use nor one its exception carries."""
        error = record.exc_info[1] if record.exc_info else None
        return scrub(super().format(record), carried_by(error))


# --- the keyring backend -----------------------------------------------------------------


def keyring_backend_name() -> str:
    """The class name of the keyring backend in use (for diagnostics)."""
    import keyring

    return type(keyring.get_keyring()).__name__


def insecure_keyring_backends() -> list[str]:
    """Backends in use that keep passwords unencrypted on disk (a chainer is looked into).

    keyring picks such a backend silently when nothing better exists (``keyrings.alt``
    installed, no desktop session: exactly cron's situation).
    """
    import keyring

    backend = keyring.get_keyring()
    found = []
    for item in [backend, *getattr(backend, "backends", [])]:
        if type(item).__name__ in INSECURE_BACKENDS:
            path = getattr(item, "file_path", None)
            found.append(f"{type(item).__module__}.{type(item).__name__}"
                         + (f" ({path})" if path else ""))
    return found


def _backend_label() -> str:
    import keyring.errors

    try:
        return f"backend {keyring_backend_name()}"
    except (keyring.errors.KeyringError, RuntimeError, ImportError):
        return "no usable backend"


def _terminal_available() -> bool:
    """Whether a person could answer a prompt: there is a controlling terminal (as getpass
    looks for one), or on other systems stdin is a terminal."""
    if os.name != "posix":
        return sys.stdin is not None and sys.stdin.isatty()
    try:
        descriptor = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    os.close(descriptor)
    return True


@contextlib.contextmanager
def _no_prompt_without_terminal() -> Iterator[None]:
    """Refuse a keyring backend's own password prompt when nobody can answer it.

    keyrings.alt's EncryptedKeyring (and backends like it) call ``getpass.getpass`` to
    unlock their file. Without a terminal getpass falls back to reading stdin: under cron
    that ends in an EOFError, and under ``ingest`` it would read the first line of a mail
    as the keyring's password. The prompt is replaced for the duration of the keyring call
    (eddymail asks the keyring from one thread at a time).
    """
    import getpass

    original = getpass.getpass

    def guarded(prompt: str = "Password: ", stream: object = None) -> str:
        if _terminal_available():
            return original(prompt, stream)  # type: ignore[arg-type]
        raise KeyringUnavailableError(
            PROMPT_WITHOUT_TERMINAL.format(backend=_backend_label()), hint=PROMPT_FIX)

    getpass.getpass = guarded
    try:
        yield
    finally:
        getpass.getpass = original


@contextlib.contextmanager
def _keyring_errors() -> Iterator[None]:
    """Turn every keyring failure into ``SecretError`` with the fix for headless hosts."""
    import keyring.errors

    try:
        with _no_prompt_without_terminal():
            yield
    except EOFError:
        # A prompt that got past the guard (a backend reading stdin itself) and found nothing.
        raise KeyringUnavailableError(
            PROMPT_WITHOUT_TERMINAL.format(backend=_backend_label()), hint=PROMPT_FIX
        ) from None
    except (keyring.errors.NoKeyringError, RuntimeError):
        raise KeyringUnavailableError(NO_KEYRING_FIX) from None
    except ValueError as error:  # keyrings.alt: "Incorrect Password" typed at its prompt
        raise KeyringUnavailableError(f"The keyring refused: {error}.", hint=PROMPT_FIX) from None
    except ImportError as error:
        raise KeyringUnavailableError(
            f"The keyring backend named by PYTHON_KEYRING_BACKEND cannot be loaded ({error}). "
            + NO_KEYRING_FIX
        ) from None
    except keyring.errors.KeyringError as error:
        raise KeyringUnavailableError(f"The keyring failed: {error}. {NO_KEYRING_FIX}") from None
