"""SMTP submission over verified TLS with smtplib.

The envelope is sent step by step (MAIL, every RCPT, then DATA) instead of with
``sendmail()``: a refused recipient stops the transaction before DATA, so the message went to
nobody and a retry from the outbox cannot send it twice to the recipients that were accepted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import smtplib
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any

from eddymail.errors import MailServerError, ValidationError
from eddymail.mail.wire import sasl
from eddymail.mail.wire.answertext import answer_of
from eddymail.mail.wire.diagnose import classify, deadline_reached, starttls_unavailable
from eddymail.mail.wire.endpoint import NO_HINTS, Endpoint, ProviderHints, Watchdog
from eddymail.mail.wire.sasl import BearerToken, Secret, plain_response
from eddymail.mail.wire.stdlib_smtplib import ReportingSMTP, ReportingSMTP_SSL
from eddymail.mail.wire.tls import make_ssl_context

_FAILURES = (smtplib.SMTPException, OSError, ValueError, UnicodeError)
_SUPPORTED_AUTH = ("CRAM-MD5", "PLAIN", "LOGIN")  # what smtplib.login can do
# 334 challenges answered during one AUTH before eddymail gives up.
_MAX_CHALLENGES = 5


class SmtpClient:
    """One SMTP session (logged in when a password or an OAuth 2.0
    :class:`~eddymail.mail.wire.sasl.BearerToken` is given); use it as a context manager.

    ``endpoint.deadline`` ends the session when the time is up, however slowly the server
    keeps talking.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        password: str | BearerToken | None,
        hints: ProviderHints = NO_HINTS,
        local_hostname: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.hints = hints
        self.local_hostname = local_hostname
        secret, self._bearer = sasl.credential_parts(password)
        self._secret = Secret(secret)
        del password, secret  # only the Secret wrapper stays (tracebacks with locals)
        self._smtp: smtplib.SMTP | None = None
        self._watchdog = Watchdog(endpoint.deadline)
        self._open()

    # -- session -------------------------------------------------------------------------

    def _open(self) -> None:
        endpoint = self.endpoint
        context = None
        if endpoint.security != "none":
            context = make_ssl_context(endpoint.ca_file, on_handshake=self._watchdog.watch)
        try:
            if context is not None and endpoint.security == "ssl":
                self._smtp = ReportingSMTP_SSL(
                    endpoint.host,
                    endpoint.port,
                    local_hostname=self.local_hostname,
                    timeout=endpoint.timeout,
                    context=context,
                    report_socket=self._watchdog.watch,
                )
            else:
                self._smtp = ReportingSMTP(
                    endpoint.host,
                    endpoint.port,
                    local_hostname=self.local_hostname,
                    timeout=endpoint.timeout,
                    report_socket=self._watchdog.watch,
                )
        except _FAILURES as exc:
            self._watchdog.stop()
            raise self._error(exc, "smtp connect") from exc
        try:
            self._call("smtp ehlo", self._connection.ehlo_or_helo_if_needed)
            if context is not None and endpoint.security == "starttls":
                self._starttls(context)
            if self._secret:
                self._login()
        except BaseException:
            self._shutdown()
            raise

    def _starttls(self, context: ssl.SSLContext) -> None:
        smtp = self._connection
        if not smtp.has_extn("starttls"):
            raise starttls_unavailable("smtp", self.endpoint, _ehlo_text(smtp), offered=False)
        self._call("smtp starttls", smtp.starttls, context=context)
        # RFC 3207: forget what was learnt before TLS and ask again.
        code, answer = self._call("smtp ehlo", smtp.ehlo)
        if code != 250:
            raise self._error(smtplib.SMTPHeloError(code, answer), "smtp ehlo")

    def _login(self) -> None:
        """Authenticate: the one place a credential is sent.

        smtplib's ``login`` (CRAM-MD5, PLAIN or LOGIN, whichever the server offers) for an
        ASCII login and password; otherwise PLAIN or LOGIN with UTF-8 through
        :meth:`_authenticate`, which a further SASL mechanism (OAuth) uses the same way.
        """
        smtp = self._connection
        login, password = self.endpoint.login, self._secret.reveal()
        if not smtp.has_extn("auth"):
            hint = (
                "the server may offer AUTH only after STARTTLS: use --security starttls"
                if self.endpoint.security == "none"
                else "this port does not take logins: use the submission port (587 with "
                "--security starttls, or 465 with --security ssl), or send without a password"
            )
            raise MailServerError(
                f"SMTP login with {self.endpoint.address} failed: the server offers no login "
                "(AUTH) on this connection.",
                operation="smtp login",
                answer=_ehlo_text(smtp),
                hint=hint,
            )
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        if self._bearer is not None:
            self._bearer_login(offered, self._bearer)
            return
        if not any(mechanism in offered for mechanism in _SUPPORTED_AUTH):
            raise MailServerError(
                f"SMTP login with {self.endpoint.address} failed: the server offers only "
                f"{' '.join(offered)}, none of which eddymail speaks.",
                operation="smtp login",
                answer="AUTH " + " ".join(offered),
                hint="the provider may require OAuth (not supported yet) or allow "
                "app passwords with PLAIN/LOGIN: check its SMTP settings",
            )
        if login.isascii() and password.isascii():
            self._send_credentials(smtp.login, login, password)
        elif "PLAIN" in offered:
            self._authenticate("PLAIN", plain_response(login, password))
        elif "LOGIN" in offered:
            self._authenticate("LOGIN", login.encode("utf-8"), password.encode("utf-8"))
        else:
            # smtplib would encode the SASL strings as ASCII and fail with a UnicodeError
            # that holds the whole credential string; RFC 4616 says UTF-8.
            raise self._error(
                smtplib.SMTPException("non-ASCII passwords need AUTH PLAIN or LOGIN"),
                "smtp login",
            )

    def _bearer_login(self, offered: list[str], mechanisms: tuple[str, ...]) -> None:
        """AUTH with the access token, in the mechanism the server offers; a refusal raises
        ``BearerRefused`` with what its error challenge said."""
        mechanism, initial = sasl.opening(offered, mechanisms, self.endpoint,
                                          self._secret.reveal())
        challenges: list[bytes] = []
        failure: MailServerError | None = None
        try:
            self._exchange(mechanism, initial, sasl.dummy_response(mechanism),
                           challenges=challenges)
        except smtplib.SMTPAuthenticationError as exc:
            failure = sasl.refused("smtp", self.endpoint.address, mechanism, answer_of(exc),
                                   challenges, "smtp login", offered)
        except _FAILURES as exc:
            failure = self._error(exc, "smtp login")
        if failure is not None:
            raise failure  # outside the except block: no chain into frames with the token

    def _authenticate(self, mechanism: str, initial_response: bytes, *later: bytes) -> None:
        """One SASL exchange (see :meth:`_exchange`) with a password."""
        self._send_credentials(self._exchange, mechanism, initial_response, *later)

    def _exchange(self, mechanism: str, initial_response: bytes, *later: bytes,
                  challenges: list[bytes] | None = None) -> None:
        """AUTH (RFC 4954): ``initial_response`` goes with the command, ``later`` answer the
        334 challenges in turn, and any challenge beyond them gets an empty answer (how a
        client acknowledges an error challenge, e.g. XOAUTH2's). The challenges (decoded)
        are added to ``challenges``. Raises smtplib's errors."""
        smtp = self._connection
        pending = [base64.b64encode(response).decode("ascii") for response in later]
        # "=" is an empty initial response; nothing would mean "no initial response".
        initial = base64.b64encode(initial_response).decode("ascii") or "="
        code, answer = smtp.docmd("AUTH", f"{mechanism} {initial}")
        for _ in range(_MAX_CHALLENGES):
            if code != 334:
                break
            if challenges is not None:
                challenges.append(_decoded(answer))
            code, answer = smtp.docmd(pending.pop(0) if pending else "")
        if code not in (235, 503):
            raise smtplib.SMTPAuthenticationError(code, answer)

    def _send_credentials(self, call: Callable[..., object], *args: Any) -> None:
        smtp = self._connection
        failure: MailServerError | None = None
        try:
            call(*args)
        except _FAILURES as exc:
            failure = self._error(exc, "smtp login")
        finally:
            # smtplib keeps both on the object for its auth_* callbacks (documented).
            smtp.user = smtp.password = ""
        if failure is not None:
            raise failure  # outside the except block: no chain into frames holding the password

    def close(self) -> None:
        """Send QUIT (best effort) and close the connection; never raises."""
        smtp = self._smtp
        if smtp is None:
            return
        with contextlib.suppress(Exception):  # the session is over either way
            smtp.quit()
        self._shutdown()

    def _shutdown(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):  # closing a dead socket may fail; nothing to do
                smtp.close()
        self._watchdog.stop()

    def __enter__(self) -> SmtpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------

    def send(self, mail_from: str, recipients: list[str], raw: bytes,
             before_data: Callable[[], None] | None = None) -> str:
        """Send ``raw`` to ``recipients``; return the server's answer to DATA.

        Line endings are normalised to CRLF (bare LF is refused by strict servers). If any
        recipient is refused, the transaction is reset before DATA and
        :class:`MailServerError` names them: nobody got the message. A connection lost
        *during* DATA leaves it unknown whether the server took the message: so
        ``before_data`` is called once every recipient was accepted, just before DATA, for
        the caller to record that from now on the mail may have been delivered.
        """
        if not recipients:
            raise ValidationError("A message needs at least one recipient.")
        smtp = self._connection
        raw = re.sub(rb"\r\n|\r|\n", b"\r\n", raw)
        options: list[str] = []
        if smtp.does_esmtp:
            if smtp.has_extn("size"):
                options.append(f"SIZE={len(raw)}")
            if smtp.has_extn("8bitmime") and any(byte > 0x7F for byte in raw):
                options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in [mail_from, *recipients]):
            if not smtp.has_extn("smtputf8"):
                raise MailServerError(
                    f"SMTP mail from with {self.endpoint.address} failed: an address is not "
                    "ASCII and the server does not support SMTPUTF8.",
                    operation="smtp mail from",
                    answer=_ehlo_text(smtp),
                    hint="use ASCII addresses (punycode for the domain) with this server",
                )
            options.append("SMTPUTF8")

        code, answer = self._call("smtp mail from", smtp.mail, mail_from, options)
        if code != 250:
            self._reset()
            raise self._error(
                smtplib.SMTPSenderRefused(code, answer, mail_from),
                "smtp mail from",
                f"sender {mail_from}",
            )
        refused: dict[str, tuple[int, bytes]] = {}
        for recipient in recipients:
            code, answer = self._call("smtp rcpt to", smtp.rcpt, recipient)
            if code not in (250, 251):
                refused[recipient] = (code, answer)
        if refused:
            self._reset()
            raise self._error(
                smtplib.SMTPRecipientsRefused(refused),
                "smtp rcpt to",
                f"refused {len(refused)} of {len(recipients)} recipients: {', '.join(refused)}",
            )
        if before_data is not None:
            before_data()
        code, answer = self._call("smtp data", smtp.data, raw)
        if code != 250:
            self._reset()
            raise self._error(smtplib.SMTPDataError(code, answer), "smtp data")
        return f"{code} {answer.decode('utf-8', 'replace')}".strip()

    def _reset(self) -> None:
        with contextlib.suppress(Exception):  # the error being reported matters more
            self._connection.rset()

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            raise MailServerError(
                f"SMTP with {self.endpoint.address} failed: the connection is closed.",
                operation="smtp",
            )
        return self._smtp

    def _call(self, operation: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except _FAILURES as exc:
            raise self._error(exc, operation) from exc

    def _error(
        self, exc: BaseException, operation: str, detail: str | None = None
    ) -> MailServerError:
        if self._watchdog.expired and not isinstance(exc, MailServerError):
            return deadline_reached("smtp", operation, self.endpoint)
        return classify(
            exc,
            protocol="smtp",
            operation=operation,
            endpoint=self.endpoint,
            hints=self.hints,
            secrets=(self._secret.reveal(),),
            detail=detail,
        )


def _ehlo_text(smtp: smtplib.SMTP) -> str:
    answer = smtp.ehlo_resp or smtp.helo_resp or b""
    return " ".join(answer.decode("utf-8", "replace").split())


def _decoded(data: bytes) -> bytes:
    """A 334 challenge's base64 decoded (or as sent, when it is not base64)."""
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return data.strip()
