"""The private standard-library internals eddymail still relies on, each pinned by a test.

``eddymail/mail/wire/stdlib_imaplib.py`` and ``stdlib_smtplib.py`` hold the only uses of
private imaplib/smtplib names; ``tls.py`` relies on ``SSLContext.sslsocket_class`` (public)
reaching ``SSLSocket.do_handshake``. When a Python release changes any of these, a test here
fails and names the adapter to update, instead of a deadline or a password scrub silently
doing nothing. A last test keeps the adapters the only such places in ``mail/wire``.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from pathlib import Path

import pytest

import eddymail.mail.wire
from eddymail.mail.wire.imapconnection import ImapConnection
from eddymail.mail.wire.socketstream import SocketStream
from eddymail.mail.wire.stdlib_imaplib import forget_command_log
from eddymail.mail.wire.stdlib_smtplib import ReportingSMTP, ReportingSMTP_SSL
from eddymail.mail.wire.tls import make_ssl_context
from tests.adversarial.scripted_servers import ImapServer, ScriptedServer, SmtpServer, silent

PASSWORD = "Adapter-Secret-42"
WIRE = Path(eddymail.mail.wire.__file__).parent
ADAPTERS = {"stdlib_imaplib.py", "stdlib_smtplib.py"}


@pytest.mark.skipif(not __debug__, reason="imaplib keeps no command log under python -O")
def test_imaplib_keeps_login_in_its_command_log_and_the_adapter_empties_it():
    """imaplib still logs the LOGIN line (password included) where the adapter looks, and
    after ``forget_command_log`` the password is nowhere on the imaplib object. If the
    first assertion fails, Python moved the log: update ``stdlib_imaplib``."""
    with ScriptedServer(ImapServer()) as server:
        imap = ImapConnection(server.host, server.port, 5, stream=SocketStream())
        try:
            imap.login("agent", PASSWORD)
            assert PASSWORD in repr(vars(imap)), "imaplib no longer logs LOGIN where expected"
            forget_command_log(imap)
            assert PASSWORD not in repr(vars(imap))
        finally:
            imap.logout()
        assert PASSWORD.encode() in server.transcript  # the login did happen


def test_forget_command_log_leaves_an_object_without_a_log_alone():
    """Under ``python -O`` imaplib has no ``_cmd_log``; the adapter must not fail then."""

    class NoLog:
        pass

    forget_command_log(NoLog())  # type: ignore[arg-type]


def test_smtplib_reports_the_socket_it_connects():
    """``SMTP.connect`` still creates its socket through ``_get_socket``: the reported socket
    is the live connection to the server, before the greeting is read."""
    reported: list[socket.socket] = []
    with ScriptedServer(SmtpServer()) as server:
        smtp = ReportingSMTP(server.host, server.port, timeout=5, report_socket=reported.append)
        try:
            assert len(reported) == 1
            assert reported[0].getpeername() == (server.host, server.port)
            assert smtp.noop()[0] == 250
        finally:
            smtp.quit()


def test_smtplib_ssl_reports_its_tls_socket(pki):
    """The same hook on ``SMTP_SSL`` reports the TLS socket the session then uses."""
    reported: list[socket.socket] = []
    handshakes: list[socket.socket] = []
    context = make_ssl_context(str(pki.ca_file), on_handshake=handshakes.append)
    with ScriptedServer(SmtpServer(), tls=pki.server_context()) as server:
        smtp = ReportingSMTP_SSL(server.host, server.port, timeout=5, context=context,
                                 report_socket=reported.append)
        try:
            assert len(reported) == 1 and isinstance(reported[0], ssl.SSLSocket)
            assert handshakes == reported  # the handshake was watched on the same socket
        finally:
            smtp.quit()


def test_a_reporting_subclass_is_still_an_smtplib_client():
    """The adapters subclass smtplib's public classes, so everything public still works."""
    assert issubclass(ReportingSMTP, smtplib.SMTP)
    assert issubclass(ReportingSMTP_SSL, smtplib.SMTP_SSL)


def test_the_tls_context_reports_a_socket_before_its_handshake():
    """``make_ssl_context(on_handshake=...)`` hears of the TLS socket while the handshake
    is still waiting (here for a server that never answers), so a watchdog can cut it."""
    reported: list[socket.socket] = []
    context = make_ssl_context(on_handshake=reported.append)
    with ScriptedServer(silent) as server:
        sock = socket.create_connection((server.host, server.port), timeout=0.2)
        with pytest.raises(OSError):  # TimeoutError: the handshake never completes
            context.wrap_socket(sock, server_hostname=server.host)
    assert len(reported) == 1 and isinstance(reported[0], ssl.SSLSocket)


def test_no_private_stdlib_access_outside_the_adapters():
    """``mail/wire`` reaches into no private attribute of a standard-library object except
    in the adapter modules: ``._name`` is allowed only on ``self``/``cls``/``super()``
    (eddymail's own objects), never on a module, an imaplib/smtplib object or a socket."""
    offenders = []
    for path in sorted(WIRE.glob("*.py")):
        if path.name in ADAPTERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            code = line.split("#", 1)[0]
            for match in re.finditer(r"([\w)\]]+)\._[a-z]\w*", code):
                if match.group(1) not in {"self", "cls"}:
                    offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []
