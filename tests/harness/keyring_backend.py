"""An in-memory keyring backend so that no test ever reads or writes a real keyring.

The ``memory_keyring`` fixture installs a fresh instance for every test and also points
``PYTHON_KEYRING_BACKEND`` here, so a keyring that gets (re)initialised from the environment,
in this process or in a child process that can import ``tests``, lands here too.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

__all__ = ["MemoryKeyring"]


class MemoryKeyring(KeyringBackend):
    """Passwords kept in a dict of this instance; nothing is persisted."""

    priority = 1  # type: ignore[assignment]  # a plain number is what keyring expects

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}
        """``(service, username) -> password``; tests may inspect or pre-fill it."""

    def get_password(self, service: str, username: str) -> str | None:
        """Return the stored password, or None."""
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store (or replace) a password."""
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        """Remove a password; raise PasswordDeleteError when there is none, as real backends do."""
        try:
            del self.passwords[(service, username)]
        except KeyError:
            raise PasswordDeleteError(f"no password for {username!r} in {service!r}") from None
