"""An in-memory keyring backend so that no test ever reads or writes a real keyring.

The ``memory_keyring`` fixture installs a fresh instance for every test and also points
``PYTHON_KEYRING_BACKEND`` here, so a keyring that gets (re)initialised from the environment,
in this process or in a child process that can import ``tests``, lands here too.
"""

from __future__ import annotations

import getpass

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError
from keyrings.alt.file import PlaintextKeyring

__all__ = ["MemoryKeyring", "PromptingKeyring"]


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


class PromptingKeyring(PlaintextKeyring):
    """keyrings.alt's file keyring, asking for a password before any access the way its
    EncryptedKeyring does (``getpass.getpass``, "Incorrect Password" as a ValueError).

    The real EncryptedKeyring needs pycryptodome, which keyring would then also pick by itself
    wherever keyrings.alt is installed; this one is only used where a test names it.
    """

    priority = 0.1  # type: ignore[assignment]  # never chosen unless named
    PASSWORD = "open sesame"

    def _unlock(self) -> None:
        if getpass.getpass("Please enter password for encrypted keyring: ") != self.PASSWORD:
            raise ValueError("Incorrect Password")

    def get_password(self, service: str, username: str) -> str | None:
        """The password, once the keyring is unlocked."""
        self._unlock()
        return super().get_password(service, username)

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store a password, once the keyring is unlocked."""
        self._unlock()
        super().set_password(service, username, password)
