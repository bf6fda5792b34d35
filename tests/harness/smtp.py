"""An aiosmtpd submission server for tests that records every message it accepts.

Two listeners on 127.0.0.1, both with the test PKI's server certificate:

* ``port``: plain SMTP offering STARTTLS. AUTH is offered and accepted only after STARTTLS,
  unless the server is made with ``require_tls_for_auth=False``.
* ``smtps_port``: implicit TLS (RFC 8314), AUTH offered straight away.

The ports are chosen once, so :meth:`SmtpServer.stop` followed by :meth:`SmtpServer.start`
brings the server back on the same ports ("server down, then back" tests).

Made with ``bearer=`` (a function that introspects an access token, e.g.
:meth:`tests.harness.oauth_server.OAuthServer.introspect`), the server also offers XOAUTH2
and OAUTHBEARER (RFC 7628): a token must be active, belong to the login named in the SASL
string and carry ``bearer_scope``. A refused token gets the error challenge real providers
send (base64 JSON with ``status`` and ``scope``), then, after the client's dummy answer,
``oauth_failure_reply`` (where ``{blob}`` stands for what the client sent, base64, as careless
servers echo it). Such a server accepts AUTH lines of 12288 octets (RFC 4954 §4), as bearer
tokens are long.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.harness import free_port
from tests.harness.certs import TestPKI

__all__ = ["AuthAttempt", "ReceivedMail", "SmtpServer", "start_smtp"]


@dataclass
class ReceivedMail:
    """One message accepted by :class:`SmtpServer` (after the final ``250`` to DATA)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None
    """The AUTH identity, or None when the client did not authenticate."""
    tls: bool
    """True when the message travelled over TLS (STARTTLS or implicit)."""
    port: int = 0
    """Which listener received it."""
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)


@dataclass
class AuthAttempt:
    """One AUTH exchange seen by the server, successful or not."""

    login: str
    mechanism: str
    success: bool
    tls: bool


class SmtpServer:
    """A recording SMTP server; see the module docstring. Made (and started) by
    :func:`start_smtp`.

    Authentication: AUTH PLAIN and LOGIN succeed only for users added with :meth:`add_user`;
    anything else gets ``535 5.7.8 Authentication credentials invalid``. With
    ``auth_required=None`` (the default) MAIL FROM needs a successful AUTH as soon as at least
    one user exists, and is open before that; True/False force it either way.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        pki: TestPKI,
        *,
        require_tls_for_auth: bool = True,
        auth_required: bool | None = None,
        require_starttls: bool = False,
        port: int | None = None,
        smtps_port: int | None = None,
        bearer: Callable[[str], dict[str, Any]] | None = None,
        bearer_scope: str = "smtp",
        oauth_failure_reply: str = "535 5.7.8 Authentication credentials invalid",
    ) -> None:
        self.pki = pki
        self.bearer = bearer
        self.bearer_scope = bearer_scope
        self.oauth_failure_reply = oauth_failure_reply
        self.ca_file: Path = pki.ca_file
        self.require_tls_for_auth = require_tls_for_auth
        self.auth_required = auth_required
        self.require_starttls = require_starttls
        self.port = port if port is not None else free_port(self.host)
        self.smtps_port = smtps_port if smtps_port is not None else free_port(self.host)
        self.received: list[ReceivedMail] = []
        """Accepted messages in arrival order. Appended to from the server thread."""
        self.auth_attempts: list[AuthAttempt] = []
        self._users: dict[str, str] = {}
        self._data_responses: list[str] = []
        self._condition = threading.Condition()
        self._controllers: list[_RecordingController] = []

    # -- configuration ---------------------------------------------------------------------

    def add_user(self, login: str, password: str) -> None:
        """Accept AUTH PLAIN/LOGIN with exactly these credentials."""
        with self._condition:
            self._users[login] = password

    def queue_data_response(self, response: str) -> None:
        """Answer the next DATA with ``response`` (e.g. ``"451 4.3.0 Try again later"``)
        instead of accepting it; queued responses are used one per message, in order.

        A rejected message is not added to :attr:`received`.
        """
        with self._condition:
            self._data_responses.append(response)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._controllers)

    def start(self) -> None:
        """Start listening on :attr:`port` and :attr:`smtps_port` (the same ones every time)."""
        if self._controllers:
            raise RuntimeError("SMTP server already running")
        context = self.pki.server_context()
        common: dict[str, Any] = {
            "hostname": self.host,
            # Without server_hostname aiosmtpd calls socket.getfqdn(), which can wait on DNS.
            "server_hostname": "localhost",
            "authenticator": self._authenticate,
            "auth_required": False,  # enforced in handle_MAIL so that it can change at runtime
        }
        handler_class = _Handler if self.bearer is None else _OAuthHandler
        plain = _RecordingController(
            handler_class(self, self.port),
            port=self.port,
            tls_context=context,
            require_starttls=self.require_starttls,
            auth_require_tls=self.require_tls_for_auth,
            **common,
        )
        # On the implicit-TLS port the whole connection is TLS, but aiosmtpd only counts
        # STARTTLS as "TLS" for AUTH, so it must be told not to require it or it would never
        # offer AUTH there.
        implicit = _RecordingController(
            handler_class(self, self.smtps_port),
            port=self.smtps_port,
            ssl_context=context,
            auth_require_tls=False,
            **common,
        )
        started: list[_RecordingController] = []
        try:
            for controller in (plain, implicit):
                controller.start()
                started.append(controller)
        except BaseException:
            for controller in started:
                controller.stop()
            raise
        self._controllers = started

    def stop(self) -> None:
        """Close the listeners and drop open connections, like a server going down.

        Received mail is kept. Safe to call when already stopped.
        """
        controllers, self._controllers = self._controllers, []
        for controller in controllers:
            controller.stop_and_disconnect()

    # -- inspection ------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages were received; return all of them.

        Raises TimeoutError (listing what did arrive) when they do not come in time.
        """
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout} s, got "
                    f"{len(self.received)}: {self.received!r}"
                )
            return list(self.received)

    # -- called from the server thread -----------------------------------------------------

    def _record(self, mail: ReceivedMail) -> str | None:
        with self._condition:
            if self._data_responses:
                return self._data_responses.pop(0)
            self.received.append(mail)
            self._condition.notify_all()
        return None

    def _needs_auth(self) -> bool:
        with self._condition:
            if self.auth_required is None:
                return bool(self._users)
            return self.auth_required

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        with self._condition:
            success = login in self._users and self._users[login] == password
            self.auth_attempts.append(
                AuthAttempt(login=login, mechanism=mechanism, success=success,
                            tls=_is_tls(server))
            )
        # handled=False + no message makes aiosmtpd answer
        # "535 5.7.8 Authentication credentials invalid" on failure.
        return AuthResult(success=success, handled=False, auth_data=auth_data)


class _Handler:
    """aiosmtpd handler that reports to its :class:`SmtpServer`."""

    def __init__(self, owner: SmtpServer, port: int) -> None:
        self._owner = owner
        self._port = port

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self._owner._needs_auth() and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = session.login_data
        data = envelope.original_content or b""
        mail = ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=list(envelope.rcpt_tos),
            data=data if isinstance(data, bytes) else data.encode(),
            login=login.decode("utf-8", "replace") if isinstance(login, bytes) else login,
            tls=_is_tls(server),
            port=self._port,
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
        )
        rejection = self._owner._record(mail)
        if rejection is not None:
            return rejection
        return f"250 2.0.0 OK: queued as {len(self._owner.received)}"


class _OAuthHandler(_Handler):
    """A handler that also offers XOAUTH2 and OAUTHBEARER (aiosmtpd finds ``auth_*``)."""

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        owner = self._owner
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False,
                                  message="501 5.5.2 Can't decode base64")
        else:
            answer = await server.challenge_auth(b"")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            assert isinstance(answer, bytes)
            blob = answer
        login, token = _parse_bearer(blob, mechanism)
        assert owner.bearer is not None
        facts = owner.bearer(token) if token else {"active": False}
        success = (
            facts.get("active") is True
            and login is not None and facts.get("username") == login
            and owner.bearer_scope in str(facts.get("scope", "")).split()
        )
        with owner._condition:
            owner.auth_attempts.append(AuthAttempt(login=login or "", mechanism=mechanism,
                                                   success=success, tls=_is_tls(server)))
        if success:
            assert login is not None
            return AuthResult(success=True, handled=False,
                              auth_data=LoginPassword(login.encode(), b""))
        # RFC 7628 §3.2.2: an error challenge, the client's dummy answer, then the failure.
        status = "401" if mechanism == "XOAUTH2" else "invalid_token"
        challenge = {"status": status, "schemes": "bearer", "scope": owner.bearer_scope}
        dummy = await server.challenge_auth(json.dumps(challenge).encode())
        if dummy is MISSING:
            return AuthResult(success=False, handled=True)
        expected = b"" if mechanism == "XOAUTH2" else b"\x01"
        if dummy != expected:
            return AuthResult(success=False, handled=False,
                              message="501 5.5.2 Expected the dummy answer to the error")
        echoed = base64.b64encode(blob).decode()
        return AuthResult(success=False, handled=False,
                          message=owner.oauth_failure_reply.replace("{blob}", echoed))


def _parse_bearer(blob: bytes, mechanism: str) -> tuple[str | None, str | None]:
    """The login and the token of an XOAUTH2 or OAUTHBEARER initial response."""
    text = blob.decode("utf-8", "replace")
    login = None
    if mechanism == "OAUTHBEARER":
        header, _, text = text.partition("\x01")
        # gs2 header: "n,a=user," (the authzid may be absent: "n,,").
        for part in header.split(","):
            if part.startswith("a="):
                login = part[2:].replace("=2C", ",").replace("=3D", "=")
    fields = dict(item.partition("=")[::2] for item in text.split("\x01") if "=" in item)
    login = fields.get("user", login)
    auth = fields.get("auth", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else None
    return login, token


class _LongAuthSMTP(SMTP):
    """aiosmtpd's SMTP with room for long AUTH lines (RFC 4954 §4: 12288 octets)."""

    line_length_limit = 12288 + 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # An instance dict: aiosmtpd's is a class attribute shared by every server.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["AUTH"] = 12288


class _RecordingController(Controller):
    """A Controller that can also cut the connections it has open when stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions: set[SMTP] = set()

    def factory(self) -> SMTP:
        if isinstance(self.handler, _OAuthHandler):
            smtp: SMTP = _LongAuthSMTP(self.handler, **self.SMTP_kwargs)
        else:
            smtp = super().factory()
        self._sessions.add(smtp)
        return smtp

    def stop_and_disconnect(self) -> None:
        def close_all() -> None:
            for smtp in list(self._sessions):
                if smtp.transport is not None:
                    smtp.transport.abort()
            self._sessions.clear()

        # Controller.stop() only closes the listening socket; established connections would
        # otherwise linger half-alive, which is not what "the server went down" looks like.
        self.loop.call_soon_threadsafe(close_all)
        self.stop()


def _is_tls(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def start_smtp(
    pki: TestPKI,
    *,
    require_tls_for_auth: bool = True,
    auth_required: bool | None = None,
    require_starttls: bool = False,
    port: int | None = None,
    smtps_port: int | None = None,
    **oauth: Any,
) -> SmtpServer:
    """Create an :class:`SmtpServer` (see there for the options) and start it.

    ``oauth`` takes ``bearer``, ``bearer_scope`` and ``oauth_failure_reply`` (module docstring).
    """
    server = SmtpServer(
        pki,
        require_tls_for_auth=require_tls_for_auth,
        auth_required=auth_required,
        require_starttls=require_starttls,
        port=port,
        smtps_port=smtps_port,
        **oauth,
    )
    server.start()
    return server
