"""The connection layer under the IMAP, POP3 and SMTP clients, against scripted servers.

What eddymail now does itself instead of through private standard-library hooks: the
deadline reaches a TLS handshake, plain text injected before a STARTTLS handshake is never
read as an answer, POP3 answers are read and bounded here, and a SASL exchange (the slot for
OAuth) answers error challenges with an empty line.
"""

from __future__ import annotations

import base64
import poplib
import time

import pytest

from eddymail.errors import MailServerError
from eddymail.mail.wire.endpoint import Endpoint
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.pop3connection import Pop3Connection
from eddymail.mail.wire.smtp import SmtpClient
from eddymail.mail.wire.socketstream import SocketStream
from tests.adversarial.scripted_servers import ImapServer, Pop3Server, ScriptedServer, silent

PASSWORD = "Wire-Secret-9"
CLIENTS = {"imap": ImapClient, "pop3": Pop3Client, "smtp": SmtpClient}


# --- the deadline reaches the TLS handshake ----------------------------------------------------


@pytest.mark.parametrize("protocol", sorted(CLIENTS))
def test_the_deadline_cuts_a_tls_handshake_that_never_ends(pki, protocol):
    """A server that accepts the connection and never answers the TLS handshake: the socket
    timeout (10 s) would wait, the deadline (0.5 s from now) cuts the handshake and says so.
    Had the handshake not been watched, the session would have ended by the timeout."""
    with ScriptedServer(silent) as server:
        endpoint = Endpoint(server.host, server.port, "ssl", "agent", ca_file=str(pki.ca_file),
                            timeout=10, deadline=time.monotonic() + 0.5)
        with pytest.raises(MailServerError) as caught:
            CLIENTS[protocol](endpoint, PASSWORD)
    assert caught.value.answer == "deadline reached", caught.value.message
    cause = caught.value.__cause__
    assert cause is not None and not isinstance(cause, TimeoutError), repr(cause)
    assert PASSWORD.encode() not in server.transcript


# --- plain text injected before the STARTTLS handshake ----------------------------------------


class Pop3InjectingBeforeTls(Pop3Server):
    """Sends a forged ``+OK`` in plain text right behind its STLS agreement; under TLS it
    refuses USER. A client that read the forged line as USER's answer would send PASS."""

    def do_STLS(self, connection, arguments):
        connection.send(b"+OK Begin TLS\r\n+OK forged in plain text\r\n")
        return connection.start_tls(self.stls)

    def do_USER(self, connection, arguments):
        connection.send(b"-ERR [AUTH] no such user\r\n")


class ImapInjectingBeforeTls(ImapServer):
    """Sends a forged tagged OK for the next two commands in plain text behind its
    STARTTLS agreement; under TLS it refuses every login."""

    def do_STARTTLS(self, connection, tag, arguments):
        number = int(tag.lstrip(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        prefix = tag[: len(tag) - len(str(number))]
        forged = b"".join(b"%s%d OK forged\r\n" % (prefix, number + n) for n in (1, 2))
        connection.send(tag + b" OK Begin TLS negotiation now\r\n" + forged)
        return connection.start_tls(self.starttls)

    def do_LOGIN(self, connection, tag, arguments):
        connection.send(tag + b" NO [AUTHENTICATIONFAILED] no\r\n")

    do_AUTHENTICATE = do_LOGIN


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_plain_text_sent_before_the_tls_handshake_is_never_read(pki, protocol):
    """What a man in the middle slips in behind the server's STARTTLS/STLS agreement is
    dropped unread: the client takes its answers from inside TLS only, where the server
    refuses the login; the forged success never makes it send more."""
    if protocol == "pop3":
        handler = Pop3InjectingBeforeTls(stls=pki.server_context())
    else:
        handler = ImapInjectingBeforeTls(starttls=pki.server_context())
    with ScriptedServer(handler) as server:
        endpoint = Endpoint(server.host, server.port, "starttls", "agent",
                            ca_file=str(pki.ca_file), timeout=5)
        with pytest.raises(MailServerError) as caught:
            CLIENTS[protocol](endpoint, PASSWORD)
        commands = server.commands()
    assert caught.value.operation == f"{protocol} login", caught.value.message
    assert "forged" not in caught.value.message + caught.value.answer
    if protocol == "pop3":
        assert "PASS" not in commands, commands
    else:
        assert "SELECT" not in commands and "CAPABILITY" in commands, commands


# --- POP3 read by eddymail ----------------------------------------------------------------------


class Pop3Quirks(Pop3Server):
    """Bare LF line ends, dot-stuffed lines and a garbled STAT."""

    def send_body(self, connection, number):
        connection.send(b"Subject: dots\n\n..leading dot\n...two dots\n.\n")

    def do_STAT(self, connection, arguments):
        connection.send(b"+OK lots\r\n")


def test_pop3_undoes_dot_stuffing_and_accepts_bare_line_feeds():
    with ScriptedServer(Pop3Quirks([("uid-1", b"Subject: x\r\n\r\nx\r\n")])) as server:
        endpoint = Endpoint(server.host, server.port, "none", "agent", timeout=5)
        with Pop3Client(endpoint, PASSWORD) as client:
            raw = client.retrieve(1)
            with pytest.raises(MailServerError) as caught:
                client.stat()
    assert raw == b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n"
    assert caught.value.operation == "pop3 stat" and "lots" in caught.value.answer


class Pop3Sasl(Pop3Server):
    """AUTH: accepts the credentials ``good`` at once; any other gets an error challenge
    (like XOAUTH2's), then -ERR after the client's answer; ``endless`` challenges forever."""

    def __init__(self):
        super().__init__()
        self.answers: list[bytes] = []

    def do_AUTH(self, connection, arguments):
        mechanism, _, initial = arguments.partition(" ")
        if mechanism == "ENDLESS":
            while True:
                connection.send(b"+ \r\n")
                answer = connection.readline()
                if not answer:
                    return False  # the client hung up
                self.answers.append(answer)
        if base64.b64decode(initial) == b"good":
            connection.send(b"+OK welcome\r\n")
            return None
        connection.send(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")
        self.answers.append(connection.readline())
        connection.send(b"-ERR [AUTH] invalid token\r\n")
        return None


@pytest.mark.parametrize(("mechanism", "initial", "said"), [
    ("XTEST", b"good", None),
    ("XTEST", b"bad", "invalid token"),
    ("ENDLESS", b"any", "kept asking"),
])
def test_pop3_sasl_exchange(mechanism, initial, said):
    """The SASL slot the login step offers: a success, an error challenge answered with an
    empty line (then the server's refusal), and a server that never stops challenging."""
    handler = Pop3Sasl()
    with ScriptedServer(handler) as server:
        connection = Pop3Connection(server.host, server.port, 5, stream=SocketStream())
        try:
            if said is None:
                connection.authenticate(mechanism, initial)
            else:
                with pytest.raises(poplib.error_proto, match=said):
                    connection.authenticate(mechanism, initial)
        finally:
            connection.close()
    assert all(answer == b"\r\n" for answer in handler.answers), handler.answers
    assert (len(handler.answers) > 0) == (said is not None)
