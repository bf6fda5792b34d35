"""The protocol clients sign in with an OAuth 2.0 access token: XOAUTH2 and OAUTHBEARER over
IMAP (with SASL-IR where offered), POP3 and SMTP, against the private Dovecot and SMTP
servers that check tokens at the test authorization server; refusals carry the server's
error challenge."""

from __future__ import annotations

import base64
import json
import threading

import pytest

from eddymail.errors import BearerRefused
from eddymail.mail.wire import sasl
from eddymail.mail.wire.endpoint import Endpoint
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.smtp import SmtpClient
from tests.adversarial.scripted_servers import ImapServer, ScriptedServer
from tests.harness.dovecot import DovecotServer, MailUser
from tests.harness.oauth_server import OAuthServer
from tests.mailfactory import make_mail
from tests.test_oauth_harness import code_flow


def token_for(server: OAuthServer, user: str, scope: str = "mail smtp") -> str:
    """An access token for ``user``, through the code flow spoken with the standard library."""
    return str(code_flow(server, server.register_client(), user, scope)["access_token"])


def endpoint(dovecot: DovecotServer, user: MailUser, port: int) -> Endpoint:
    return Endpoint(host=dovecot.host, port=port, security="ssl", login=user.login,
                    ca_file=str(dovecot.pki.ca_file), timeout=10)


def logged_in_with(dovecot: DovecotServer, user: MailUser, count: int) -> list[str]:
    """The mechanisms Dovecot logged for the user's logins (but the harness's own PLAIN).

    Dovecot's login processes write through its log process, so a line may land a moment
    after the session ended: look again (a bounded number of times) until ``count`` are
    there; the caller's assertion says what was found.
    """
    found: list[str] = []
    for _attempt in range(400):
        lines = dovecot.log_file.read_text().splitlines()
        found = [line.split("method=")[1].split(",")[0] for line in lines
                 if f"user=<{user.login}>" in line and "Login:" in line]
        found = [mechanism for mechanism in found if mechanism != "PLAIN"]
        if len(found) >= count:
            break
        threading.Event().wait(0.05)
    return found


@pytest.mark.parametrize("mechanisms", [("OAUTHBEARER", "XOAUTH2"), ("XOAUTH2",)])
def test_imap_and_pop3_sign_in_with_a_token(dovecot, mail_user, oauth_server,
                                            mechanisms) -> None:
    dovecot.deliver(mail_user, make_mail("Hello"))
    token = sasl.BearerToken(token_for(oauth_server, mail_user.login), mechanisms)
    with ImapClient(endpoint(dovecot, mail_user, dovecot.imaps_port), token) as imap:
        assert imap.select("INBOX").exists == 1
    with Pop3Client(endpoint(dovecot, mail_user, dovecot.pop3s_port), token) as pop:
        assert pop.stat()[0] == 1
        pop.quit()
    assert logged_in_with(dovecot, mail_user, 2) == [mechanisms[0]] * 2


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_refused_token_reports_the_error_challenge(dovecot, mail_user, oauth_server,
                                                     mechanism, protocol) -> None:
    token = sasl.BearerToken(token_for(oauth_server, mail_user.login, "smtp"), (mechanism,))
    with pytest.raises(BearerRefused) as refused:
        if protocol == "imap":
            ImapClient(endpoint(dovecot, mail_user, dovecot.imaps_port), token)
        else:
            Pop3Client(endpoint(dovecot, mail_user, dovecot.pop3s_port), token)
    error = refused.value
    assert error.operation == f"{protocol} login"
    assert mechanism in error.message and "refused the access token" in error.message
    assert error.status in ("401", "invalid_token")
    if mechanism == "XOAUTH2":
        assert error.scope == "mail" and "wants scope mail" in error.answer
    assert token.reveal() not in error.message + error.answer


@pytest.mark.parametrize("mechanism", ["OAUTHBEARER", "XOAUTH2"])
def test_smtp_signs_in_with_a_token_and_reports_a_refusal(make_smtp_server, oauth_server,
                                                          mechanism) -> None:
    server = make_smtp_server(bearer=oauth_server.introspect)
    place = Endpoint(host=server.host, port=server.smtps_port, security="ssl", login="eve",
                     ca_file=str(server.ca_file), timeout=10)
    good = sasl.BearerToken(token_for(oauth_server, "eve"), (mechanism,))
    with SmtpClient(place, good) as smtp:
        smtp.send("eve@example.test", ["x@example.test"], make_mail("Hi"))
    assert server.wait_for(1)[0].login == "eve"
    narrow = sasl.BearerToken(token_for(oauth_server, "eve", "mail"), (mechanism,))
    with pytest.raises(BearerRefused) as refused:
        SmtpClient(place, narrow)
    assert refused.value.scope == "smtp" and "535" in refused.value.answer
    assert [(a.mechanism, a.success) for a in server.auth_attempts] == [
        (mechanism, True), (mechanism, False)]


def test_a_server_that_announces_no_bearer_mechanism_is_named_as_such(make_smtp_server) -> None:
    plain_only = make_smtp_server()  # AUTH PLAIN LOGIN, no OAuth 2.0
    place = Endpoint(host=plain_only.host, port=plain_only.smtps_port, security="ssl",
                     login="eve", ca_file=str(plain_only.ca_file), timeout=10)
    with pytest.raises(BearerRefused) as refused:
        SmtpClient(place, sasl.BearerToken("some-token"))
    assert refused.value.announced is False
    assert "not announced by the server, which offers LOGIN PLAIN" in refused.value.message
    assert "some-token" not in refused.value.message + refused.value.answer


class _NoSaslIr(ImapServer):
    """A server without SASL-IR that takes XOAUTH2 without announcing it (as Yandex does),
    and refuses a token that is not ``good``."""

    capabilities = "IMAP4rev1 AUTH=PLAIN UIDPLUS MOVE"
    good = "good-token"

    def do_AUTHENTICATE(self, connection, tag, arguments) -> None:
        if arguments.strip() != b"XOAUTH2":
            connection.send(tag + b" BAD no initial response expected\r\n")
            return
        connection.send(b"+ \r\n")
        blob = base64.b64decode(connection.readline().strip())
        if b"auth=Bearer " + self.good.encode() + b"\x01" in blob:
            connection.send(tag + b" OK logged in\r\n")
            return
        error = base64.b64encode(json.dumps({"status": "401", "scope": "mail"}).encode())
        connection.send(b"+ " + error + b"\r\n")
        connection.readline()  # the dummy answer
        connection.send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")


def test_without_sasl_ir_the_token_follows_the_first_challenge() -> None:
    script = _NoSaslIr([make_mail("one")])
    with ScriptedServer(script) as server:
        place = Endpoint(host="127.0.0.1", port=server.port, security="none", login="u",
                         timeout=10)
        with ImapClient(place, sasl.BearerToken("good-token", ("XOAUTH2",))) as imap:
            assert imap.select("INBOX").exists == 1
        with pytest.raises(BearerRefused) as refused:
            ImapClient(place, sasl.BearerToken("stale-token", ("XOAUTH2",)))
        sent = server.transcript
    assert refused.value.scope == "mail" and "AUTHENTICATIONFAILED" in refused.value.answer
    assert refused.value.announced is False and "offers PLAIN" in refused.value.answer
    # No initial response on the command line: the server does not announce SASL-IR.
    assert b" AUTHENTICATE XOAUTH2\r\n" in sent


class _SaslIr(ImapServer):
    """A server with SASL-IR that offers XOAUTH2 only: the token must come on the command
    line, in the one mechanism offered."""

    capabilities = "IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=XOAUTH2 UIDPLUS MOVE"

    def do_AUTHENTICATE(self, connection, tag, arguments) -> None:
        mechanism, _, initial = arguments.strip().partition(b" ")
        blob = base64.b64decode(initial) if initial else b""
        if mechanism == b"XOAUTH2" and blob == b"user=u\x01auth=Bearer good-token\x01\x01":
            connection.send(tag + b" OK logged in\r\n")
        else:
            connection.send(tag + b" BAD expected XOAUTH2 with an initial response\r\n")


def test_with_sasl_ir_the_token_is_on_the_command_line_in_the_mechanism_offered() -> None:
    with ScriptedServer(_SaslIr([make_mail("one")])) as server:
        place = Endpoint(host="127.0.0.1", port=server.port, security="none", login="u",
                         timeout=10)
        # OAUTHBEARER is preferred, but this server offers XOAUTH2 only.
        with ImapClient(place, sasl.BearerToken("good-token", sasl.MECHANISMS)) as imap:
            assert imap.select("INBOX").exists == 1
        sent = server.transcript
    assert b" AUTHENTICATE XOAUTH2 " in sent and b"OAUTHBEARER" not in sent


@pytest.mark.parametrize("login, expected", [
    ("ann@example.test", b"n,a=ann@example.test,"),
    ("odd,name=x", b"n,a=odd=2Cname=3Dx,"),
])
def test_oauthbearer_messages_follow_rfc_7628(login: str, expected: bytes) -> None:
    message = sasl.initial_response("OAUTHBEARER", login, "T0K", "mail.test", 993)
    assert message == expected + b"\x01host=mail.test\x01port=993\x01auth=Bearer T0K\x01\x01"
    assert sasl.initial_response("XOAUTH2", login, "T0K", "h", 1) == (
        f"user={login}\x01auth=Bearer T0K\x01\x01".encode())
    assert sasl.dummy_response("OAUTHBEARER") == b"\x01"
    assert sasl.dummy_response("XOAUTH2") == b""


@pytest.mark.parametrize("challenge, status, scope", [
    (base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'),
     "401", "https://mail.google.com/"),
    (b'{"status":"invalid_token","scope":"mail"}', "invalid_token", "mail"),
    (b'{"status":"insufficient_scope\\u001b[31m"}', "insufficient_scope[31m", ""),
    (b"not json at all", "", ""),
    (b"", "", ""),
    (base64.b64encode(b"[1, 2]"), "", ""),
])
def test_error_challenges_are_read_whatever_their_shape(challenge, status, scope) -> None:
    refusal = sasl.read_challenge(challenge)
    assert (refusal.status, refusal.scope) == (status, scope)
    assert refusal.describe().isprintable()


def test_the_mechanism_is_the_first_preferred_one_offered() -> None:
    assert sasl.choose_mechanism(["PLAIN", "XOAUTH2", "OAUTHBEARER"],
                                 ("OAUTHBEARER", "XOAUTH2")) == "OAUTHBEARER"
    assert sasl.choose_mechanism(["xoauth2"], ("OAUTHBEARER", "XOAUTH2")) == "XOAUTH2"
    assert sasl.choose_mechanism(["PLAIN"], ("XOAUTH2",)) == "XOAUTH2"  # unannounced: tried
    assert "secret" not in repr(sasl.BearerToken("secret")) + str(sasl.BearerToken("secret"))
