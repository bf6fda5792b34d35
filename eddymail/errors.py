"""The one family of eddymail exceptions.

Every expected failure is one of these. Each carries the process exit code it maps to and a
message written as a sentence for the person who must act on it; the CLI turns them into
output in exactly one place (``eddymail.cli.app``). Messages never contain secrets.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_ENVIRONMENT = 4
EXIT_LOCKED = 75


class EddymailError(Exception):
    """Base class: an expected failure with a message meant for a person."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(EddymailError):
    """The command line asked for something that cannot be done as written."""

    exit_code = EXIT_USAGE


class NotFoundError(EddymailError):
    """A named department, channel, ticket or other record does not exist."""


class ConflictError(EddymailError):
    """The request clashes with existing data (a duplicate name, a record still in use)."""


class ValidationError(EddymailError):
    """A value given by the user is not acceptable (bad port, bad address, ...)."""

    exit_code = EXIT_USAGE


class ConfigError(EddymailError):
    """The configuration file is unreadable or holds unknown keys or wrong types."""

    exit_code = EXIT_ENVIRONMENT


class DatabaseError(EddymailError):
    """The database cannot be opened, is locked for too long, is full or is too new."""

    exit_code = EXIT_ENVIRONMENT


class SecretError(EddymailError):
    """A password cannot be stored or read (no keyring backend, password_command failed)."""

    exit_code = EXIT_ENVIRONMENT


class KeyringUnavailableError(SecretError):
    """No usable keyring backend exists here: an environment problem, not a channel's."""


class MailServerError(EddymailError):
    """A mail server refused, failed or could not be reached.

    ``operation`` names the step (``imap login``, ``smtp starttls``, ...), ``answer`` is what
    the server (or the network stack) said, ``hint`` the likely cause when it is known.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        answer: str = "",
        hint: str | None = None,
        tls: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.operation = operation
        self.answer = answer
        self.tls = tls


class BearerRefused(MailServerError):
    """A mail server refused an OAuth 2.0 access token (XOAUTH2 or OAUTHBEARER login).

    ``status`` and ``scope`` come from the server's error challenge (RFC 7628 §3.2.2) when it
    sent one: ``401``/``invalid_token`` for an expired or revoked token, ``insufficient_scope``
    or the scope the server wants. ``announced`` is false when the server did not list the
    mechanism tried: then it may not take OAuth 2.0 at all, and a new token will not help.
    """

    def __init__(
        self,
        message: str,
        *,
        status: str = "",
        scope: str = "",
        operation: str = "",
        answer: str = "",
        hint: str | None = None,
        announced: bool = True,
    ) -> None:
        super().__init__(message, operation=operation, answer=answer, hint=hint)
        self.status = status
        self.scope = scope
        self.announced = announced


class OAuthError(MailServerError):
    """The authorization server refused a request, or could not be reached.

    ``operation`` is ``oauth refresh``, ``oauth authorize``...; ``answer`` the server's
    ``error`` code and description; ``hint`` what to do. A channel's failure, like a mail
    server's: in ``fetch`` its channel fails and the others go on.
    """


class AuthorizationRequired(OAuthError):
    """The channel has no usable grant any more (never authorized, revoked, expired):
    a person must run ``eddymail channel authorize NAME``."""


class MessageParseError(EddymailError):
    """A raw message cannot be turned into a ticket message (broken, or over a limit)."""


class PartialFailure(EddymailError):
    """Some channels (or items) failed while the others were processed."""

    exit_code = EXIT_PARTIAL


class LockBusyError(EddymailError):
    """Another eddymail process holds the lock for this job."""

    exit_code = EXIT_LOCKED


class TemporaryFailure(EddymailError):
    """Try again later (EX_TEMPFAIL): a mail server piping into ``ingest`` keeps the mail."""

    exit_code = EXIT_LOCKED
