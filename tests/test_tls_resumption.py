"""TLS session resumption: a second connection to the same server resumes the first one's
session (no certificate chain, no server signature), each session is offered once, and
never to another server, another name or under another trust store.

The servers are Python's own TLS stack (the OpenSSL a real server would run) behind the
scripted IMAP and POP3 servers: the test Dovecot starts a fresh login process, with fresh
ticket keys, for every connection, so it never resumes (and the Dovecot tests show that a
refused session costs nothing but the full handshake)."""

from __future__ import annotations

import shutil

from eddymail.mail.wire.endpoint import Endpoint
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.pop3 import Pop3Client
from tests.adversarial.scripted_servers import ImapServer, Pop3Server, ScriptedServer


def imap_session(server: ScriptedServer, ca_file: str, host: str = "127.0.0.1") -> None:
    endpoint = Endpoint(host, server.port, "ssl", "agent", ca_file=ca_file, timeout=10)
    with ImapClient(endpoint, "pw") as client:
        client.select()


def test_later_connections_resume_the_session_of_earlier_ones(pki):
    with ScriptedServer(ImapServer(), tls=pki.server_context()) as server:
        for _ in range(3):
            imap_session(server, str(pki.ca_file))
    assert server.resumed == [False, True, True]


def test_a_session_is_offered_once(pki):
    """Two sessions open at once: the second finds no session left to resume (the first
    took it), and gets a full handshake."""
    with ScriptedServer(ImapServer(), tls=pki.server_context()) as server:
        imap_session(server, str(pki.ca_file))
        endpoint = Endpoint("127.0.0.1", server.port, "ssl", "agent", ca_file=str(pki.ca_file),
                            timeout=10)
        with ImapClient(endpoint, "pw"), ImapClient(endpoint, "pw"):
            pass
        imap_session(server, str(pki.ca_file))
    # The last one resumes one of the two the overlapping sessions left.
    assert server.resumed == [False, True, False, True]


def test_no_session_crosses_servers_names_or_trust_stores(pki, tmp_path):
    context = pki.server_context()
    with ScriptedServer(ImapServer(), tls=context) as first, \
            ScriptedServer(ImapServer(), tls=context) as second:
        imap_session(first, str(pki.ca_file))
        imap_session(second, str(pki.ca_file))  # another port: another server
        imap_session(first, str(pki.ca_file), host="localhost")  # another name
        copy = tmp_path / "same-ca.pem"
        shutil.copy(pki.ca_file, copy)
        imap_session(first, str(copy))  # another --ca-file: another trust store
        imap_session(first, str(pki.ca_file))
    assert first.resumed == [False, False, False, True]
    assert second.resumed == [False]


def test_starttls_sessions_resume_too(pki):
    with ScriptedServer(Pop3Server(stls=pki.server_context())) as server:
        endpoint = Endpoint("127.0.0.1", server.port, "starttls", "agent",
                            ca_file=str(pki.ca_file), timeout=10)
        for _ in range(2):
            with Pop3Client(endpoint, "pw") as client:
                client.stat()
    assert server.resumed == [False, True]
