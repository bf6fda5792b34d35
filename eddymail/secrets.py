"""Channel passwords: in the OS keyring, or from a channel's ``password_command``.

Nothing here ever writes a secret anywhere but the keyring, and no message raised from here
contains one (nor a password command's output, which may be the secret itself).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import keyring
import keyring.errors

from eddymail.errors import KeyringUnavailableError, SecretError

KEYRING_SERVICE = "eddymail"
PASSWORD_COMMAND_TIMEOUT = 20.0

NO_KEYRING_FIX = (
    "No usable keyring backend here (a headless server or cron has no desktop keyring). "
    "Either choose a file-based backend, e.g. "
    "PYTHON_KEYRING_BACKEND=keyrings.alt.file.EncryptedKeyring, or give the channel a "
    "password command: eddymail channel edit NAME --password-command 'pass show mail/NAME'."
)

# Backends that keep the secret readable on disk; `channel test` reports them as insecure.
INSECURE_BACKENDS = ("PlaintextKeyring",)


@dataclass(frozen=True)
class PasswordSource:
    """Where a channel's password comes from: the keyring entry or a command to run."""

    channel_name: str
    command: Sequence[str] | None = None


def store_password(channel_name: str, password: str) -> None:
    """Put a channel's password into the keyring. Raises ``SecretError``."""
    if not password:
        raise SecretError("The password is empty; nothing was stored.", hint=None)
    with _keyring_errors():
        keyring.set_password(KEYRING_SERVICE, channel_name, password)


def delete_password(channel_name: str) -> bool:
    """Remove a channel's keyring entry; False when there was none or no keyring exists."""
    try:
        keyring.delete_password(KEYRING_SERVICE, channel_name)
    except (keyring.errors.PasswordDeleteError, keyring.errors.NoKeyringError, ImportError):
        return False
    except keyring.errors.KeyringError as error:
        raise SecretError(f"The keyring refused to delete the password: {error}.") from None
    return True


def rename_password(old_name: str, new_name: str) -> None:
    """Move a keyring entry when a channel is renamed (no-op when there is none)."""
    with _keyring_errors():
        secret = keyring.get_password(KEYRING_SERVICE, old_name)
    if secret is not None:
        store_password(new_name, secret)
        delete_password(old_name)


def has_keyring_password(channel_name: str) -> bool:
    """Whether the keyring holds a password for the channel (False without a keyring)."""
    try:
        return keyring.get_password(KEYRING_SERVICE, channel_name) is not None
    except (keyring.errors.KeyringError, RuntimeError, ImportError):
        return False


def get_password(source: PasswordSource) -> str:
    """The channel's password. Raises ``SecretError`` with a sentence saying what to do."""
    if source.command:
        return run_password_command(source.channel_name, source.command)
    with _keyring_errors():
        secret = keyring.get_password(KEYRING_SERVICE, source.channel_name)
    if secret is None:
        raise SecretError(
            f"No password is stored for channel '{source.channel_name}': "
            f"run eddymail channel password {source.channel_name}."
        )
    return secret


def run_password_command(
    channel_name: str, argv: Sequence[str], timeout: float = PASSWORD_COMMAND_TIMEOUT
) -> str:
    """Run ``argv`` (no shell) and return its output less exactly one trailing newline.

    The output is the secret: it never appears in an exception, a log or stderr of ours.
    """
    what = f"The password command of channel '{channel_name}'"
    try:
        completed = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SecretError(f"{what} ({argv[0]}) was not found.") from None
    except PermissionError:
        raise SecretError(f"{what} ({argv[0]}) is not executable.") from None
    except subprocess.TimeoutExpired:
        raise SecretError(f"{what} did not finish within {timeout:g} seconds.") from None
    except OSError as error:
        raise SecretError(f"{what} could not be started: {error.strerror}.") from None
    if completed.returncode != 0:
        raise SecretError(f"{what} failed with exit code {completed.returncode}.")
    output = completed.stdout
    for ending in (b"\r\n", b"\n"):
        if output.endswith(ending):
            output = output[: -len(ending)]
            break
    if not output:
        raise SecretError(f"{what} printed nothing.")
    try:
        return output.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what} printed something that is not UTF-8 text.") from None


def keyring_backend_name() -> str:
    """The class name of the keyring backend in use (for diagnostics)."""
    return type(keyring.get_keyring()).__name__


def keyring_is_insecure() -> bool:
    """Whether the keyring backend stores secrets readable on disk."""
    return keyring_backend_name() in INSECURE_BACKENDS


@contextlib.contextmanager
def _keyring_errors() -> Iterator[None]:
    """Turn every keyring failure into ``SecretError`` with the fix for headless hosts."""
    try:
        yield
    except (keyring.errors.NoKeyringError, RuntimeError):
        raise KeyringUnavailableError(NO_KEYRING_FIX) from None
    except ImportError as error:
        raise KeyringUnavailableError(
            f"The keyring backend named by PYTHON_KEYRING_BACKEND cannot be loaded ({error}). "
            + NO_KEYRING_FIX
        ) from None
    except keyring.errors.KeyringError as error:
        raise KeyringUnavailableError(f"The keyring failed: {error}. {NO_KEYRING_FIX}") from None
