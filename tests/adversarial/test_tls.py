"""TLS against hostile servers, through the real CLI: no password ever leaves unprotected.

Scripted loopback servers (``scripted_servers``) present a certificate for another host, a
certificate from a CA eddymail was not given, or a STARTTLS that is missing, refused or
hung. Each server records every line it receives, so the tests prove that no LOGIN,
AUTHENTICATE, USER, PASS or AUTH ever arrived — and a control case with a good certificate
proves the same server does record them when the client trusts it.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.adversarial.scripted_servers import (
    ImapServer,
    Pop3Server,
    ScriptedServer,
    SmtpServer,
    unknown_ca_context,
)

PASSWORD = "Top-Secret-77"
EXIT_CHANNEL_FAILED = 3
# What a client sends when it logs in, per protocol.
LOGIN_WORDS = {
    "imap": (b"LOGIN", b"AUTHENTICATE"),
    "pop3": (b"USER", b"PASS"),
    "smtp": (b"AUTH",),
}
HANDLERS: dict[str, Callable[..., Any]] = {
    "imap": ImapServer, "pop3": Pop3Server, "smtp": SmtpServer,
}


def server_context(kind: str, pki: Any, tmp_path: Path) -> ssl.SSLContext:
    """``trusted``: the test CA's certificate for 127.0.0.1 (the control case);
    ``another-host``: the test CA's certificate for wrong.example; ``unknown-ca``: a
    certificate for 127.0.0.1 from a CA eddymail is not given."""
    if kind == "trusted":
        return pki.server_context()
    if kind == "another-host":
        return pki.server_context(wrong_host=True)
    return unknown_ca_context(tmp_path)


def add_channel(support: Callable[..., Any], protocol: str, port: int, security: str,
                ca_file: Path) -> None:
    """A channel named ``mail`` whose incoming (IMAP/POP3) or outgoing (SMTP) server is the
    scripted one; ``ca_file`` is the test CA, which every server's trust would need."""
    common = ["--email", "help@example.test", "--login", "agent", "--ca-file", str(ca_file)]
    if protocol == "smtp":
        options = ["--protocol", "none", "--smtp-host", "127.0.0.1", "--smtp-port", str(port),
                   "--smtp-security", security]
    else:
        options = ["--protocol", protocol, "--host", "127.0.0.1", "--port", str(port),
                   "--security", security]
    support("mail", *common, *options, password=PASSWORD)


def assert_never_logged_in(server: ScriptedServer, protocol: str) -> None:
    """Neither the password nor any login command reached the server."""
    sent = server.transcript
    assert PASSWORD.encode() not in sent
    for word in LOGIN_WORDS[protocol]:
        assert word not in sent.upper(), f"{word!r} reached the server: {sent!r}"


def tls_logged(eddymail: Any) -> list[dict[str, Any]]:
    """The error-log entries of the channel."""
    return eddymail.json("log", "--channel", "mail")["entries"]


# --- certificates -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["another-host", "unknown-ca", "trusted"])
@pytest.mark.parametrize("protocol", ["imap", "pop3", "smtp"])
def test_untrusted_certificate_is_refused_before_the_password(
        eddymail, support, pki, tmp_path, protocol, kind):
    """IMAPS, POP3S and SMTPS with a bad certificate: ``channel test`` (and ``fetch``) exit 3,
    say it was the TLS certificate, and the server never sees a login."""
    context = server_context(kind, pki, tmp_path)
    with ScriptedServer(HANDLERS[protocol](), tls=context) as server:
        add_channel(support, protocol, server.port, "ssl", pki.ca_file)
        if kind == "trusted":
            # The control: with a certificate eddymail trusts, this very server does see
            # the login, so the assertions below can tell a leak from silence.
            eddymail("channel", "test", "mail", "--no-send", "--timeout", "5")
            assert any(word in server.transcript.upper() for word in LOGIN_WORDS[protocol])
            return
        tested = eddymail("channel", "test", "mail", "--no-send", "--timeout", "5",
                          code=EXIT_CHANNEL_FAILED)
        runs = [tested]
        if protocol != "smtp":
            runs.append(eddymail("fetch", code=EXIT_CHANNEL_FAILED))
        assert server.handshake_errors, "the client should have broken off the handshake"
        assert_never_logged_in(server, protocol)
    for run in runs:
        assert "Traceback" not in run.output + run.stderr
    # channel test shows the answer ("certificate verify failed") in its table; fetch says
    # it in its one error line on stderr, the sentence first.
    assert "certificate verify failed" in tested.stdout, tested.stdout
    if len(runs) > 1:
        assert "TLS certificate" in runs[1].stderr, runs[1].stderr
    entries = tls_logged(eddymail)
    assert entries and all("TLS certificate" in entry["message"] for entry in entries), entries
    hint = entries[0]["hint"]
    assert ("another host name" in hint) if kind == "another-host" else ("--ca-file" in hint)


# --- STARTTLS ---------------------------------------------------------------------------------


class ImapRefusingStarttls(ImapServer):
    """Offers STARTTLS, then answers it with NO."""

    def do_STARTTLS(self, connection, tag, arguments):
        connection.send(tag + b" NO [UNAVAILABLE] TLS is broken today\r\n")


class ImapStarttlsBad(ImapServer):
    """Offers STARTTLS, then calls the command unknown."""

    def do_STARTTLS(self, connection, tag, arguments):
        connection.send(tag + b" BAD unknown command\r\n")


class Pop3RefusingStls(Pop3Server):
    """Offers STLS, then answers it with -ERR."""

    def do_STLS(self, connection, arguments):
        connection.send(b"-ERR TLS is broken today\r\n")


class ImapPreauthWithStarttls(ImapServer):
    """Greets with PREAUTH: a man in the middle skipping STARTTLS (and the login) that way."""

    def greet(self, connection):
        connection.send(b"* PREAUTH [CAPABILITY " + self.capability_line() + b"] welcome\r\n")


# (protocol, server, what the server may have heard before eddymail gave up)
STARTTLS_CASES = {
    "imap-not-offered": ("imap", lambda pki: ImapServer(), {"CAPABILITY", "LOGOUT"}),
    "imap-answered-NO": ("imap", lambda pki: ImapRefusingStarttls(starttls=pki.server_context()),
                         {"CAPABILITY", "STARTTLS", "LOGOUT"}),
    "imap-answered-BAD": ("imap", lambda pki: ImapStarttlsBad(starttls=pki.server_context()),
                          {"CAPABILITY", "STARTTLS", "LOGOUT"}),
    "imap-PREAUTH": ("imap", lambda pki: ImapPreauthWithStarttls(starttls=pki.server_context()),
                     {"CAPABILITY", "STARTTLS", "LOGOUT"}),
    "pop3-not-offered": ("pop3", lambda pki: Pop3Server(), {"CAPA", "QUIT"}),
    "pop3-answered-ERR": ("pop3", lambda pki: Pop3RefusingStls(stls=pki.server_context()),
                          {"CAPA", "STLS", "QUIT"}),
    "smtp-not-offered": ("smtp", lambda pki: SmtpServer(), {"EHLO", "QUIT"}),
    "smtp-answered-454": ("smtp", lambda pki: SmtpServer(starttls="refuse"),
                          {"EHLO", "STARTTLS", "QUIT"}),
}


@pytest.mark.parametrize("case", sorted(STARTTLS_CASES))
def test_configured_starttls_that_fails_aborts_before_login(eddymail, support, pki, case):
    """A configured STARTTLS is mandatory: when the server does not offer it, refuses it or
    tries to skip it, eddymail stops before the login, never goes on in plain text, exits 3
    and says it was STARTTLS."""
    protocol, make_server, allowed = STARTTLS_CASES[case]
    handler = make_server(pki)
    with ScriptedServer(handler) as server:
        add_channel(support, protocol, server.port, "starttls", pki.ca_file)
        tested = eddymail("channel", "test", "mail", "--no-send", "--timeout", "5",
                          code=EXIT_CHANNEL_FAILED)
        runs = [tested]
        if protocol != "smtp":
            runs.append(eddymail("fetch", code=EXIT_CHANNEL_FAILED))
        assert_never_logged_in(server, protocol)
        heard = set(server.commands())
    assert heard <= allowed, f"commands sent in plain text after STARTTLS failed: {heard}"
    for run in runs:
        assert "Traceback" not in run.output + run.stderr
    assert "STARTTLS" in tested.stdout, tested.stdout  # the hint column
    if len(runs) > 1:
        assert "STARTTLS" in runs[1].stderr, runs[1].stderr  # fetch's error line
    entries = tls_logged(eddymail)
    assert entries and all("STARTTLS" in entry["message"] for entry in entries), entries
