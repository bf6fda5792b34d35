"""OAuth 2.0 channels end to end, through the real CLI: sign in, ``channel test``, ``fetch``
mail into tickets, reply by SMTP, a token that expires, a grant that is revoked.

Dovecot checks the bearer tokens against the test authorization server's introspection
endpoint (scope ``mail``); the SMTP server does too (scope ``smtp``).
"""

from __future__ import annotations

import json
import sys

import pytest

from eddymail.cli import cli
from tests.harness.dovecot import DovecotServer, MailUser
from tests.harness.oauth_server import OAuthClient, OAuthServer
from tests.harness.smtp import SmtpServer
from tests.mailfactory import make_mail
from tests.oauth_helpers import BrowserPlayingStdin, FakeClock, approve_as, endpoint_options

LIFETIME = 3600


@pytest.fixture
def bearer_smtp(make_smtp_server, oauth_server: OAuthServer) -> SmtpServer:
    """An SMTP server that takes the test authorization server's tokens (scope smtp)."""
    return make_smtp_server(bearer=oauth_server.introspect)


def servers(dovecot: DovecotServer, user: MailUser, smtp: SmtpServer, *,
            protocol: str = "imap") -> list[str]:
    port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
    return ["--email", user.address, "--login", user.login, "--protocol", protocol,
            "--host", "127.0.0.1", "--port", str(port), "--security", "ssl",
            "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp.smtps_port),
            "--smtp-security", "ssl", "--smtp-login", user.login]


@pytest.fixture
def signed_in(eddymail, support, dovecot, mail_user, bearer_smtp, oauth_server,
              clock: FakeClock):
    """Channel ``desk`` on the test servers, signed in with the device flow."""

    def make(name: str = "desk", *, scopes: str = "mail smtp", **knobs) -> OAuthClient:
        client = oauth_server.register_client(access_lifetime=LIFETIME, device_interval=5,
                                              **knobs)
        support(name, *servers(dovecot, mail_user, bearer_smtp),
                *endpoint_options(oauth_server, client, scopes=scopes), password=None)
        clock.on_sleep = [approve_as(oauth_server, mail_user.login)]
        eddymail("channel", "authorize", name)
        return client

    return make


def test_device_flow_channel_tests_fetches_replies_refreshes_and_asks_again_when_revoked(
        eddymail, support, signed_in, dovecot: DovecotServer, mail_user: MailUser,
        bearer_smtp: SmtpServer, oauth_server: OAuthServer, clock: FakeClock) -> None:
    signed_in()
    tested = eddymail.json("channel", "test", "desk")["channels"][0]
    assert tested["ok"], tested
    assert tested["sign_in"]["scopes"] == ["mail", "smtp", "offline_access"]
    assert tested["sign_in"]["expires_at"] and tested["sign_in"]["flow"] == "device"
    assert [c["check"] for c in tested["checks"]] == ["sign-in", "incoming", "outgoing"]
    letter = bearer_smtp.wait_for(1)[0]
    assert letter.login == mail_user.login
    assert {a.mechanism for a in bearer_smtp.auth_attempts} == {"OAUTHBEARER"}

    for number in (1, 2):
        dovecot.deliver(mail_user, make_mail(subject=f"Printer {number} is on fire",
                                             sender=f"cust{number}@example.org"))
    fetched = eddymail.json("fetch", "--no-notify")["channels"][0]
    assert (fetched["ok"], fetched["fetched"], fetched["new_tickets"]) == (True, 2, 2)
    eddymail("ticket", "reply", "1", "-m", "We are on it.")
    reply = bearer_smtp.wait_for(2)[1]
    assert reply.login == mail_user.login and b"We are on it." in reply.data

    # An hour later the access token has expired: fetch refreshes it, nobody is asked.
    refreshes = oauth_server.requests["token:refresh_token"]
    clock.advance(LIFETIME + 1)
    dovecot.deliver(mail_user, make_mail(subject="Still burning", sender="cust3@example.org"))
    again = eddymail.json("fetch", "--no-notify", input="")["channels"][0]
    assert (again["ok"], again["fetched"]) == (True, 1)
    assert oauth_server.requests["token:refresh_token"] == refreshes + 1

    # The grant is revoked: this channel fails with the instruction, the others are fetched.
    other = dovecot.create_user()
    support("plain", "--email", other.address, "--login", other.login, "--host", "127.0.0.1",
            "--port", str(dovecot.imaps_port), "--security", "ssl", "--ca-file",
            str(dovecot.pki.ca_file), password=other.password)
    dovecot.deliver(other, make_mail(subject="Hello", sender="cust4@example.org"))
    oauth_server.revoke_user(mail_user.login)
    clock.advance(LIFETIME + 1)
    failed = eddymail("fetch", "--no-notify", code=3)
    assert "eddymail channel authorize desk" in failed.stderr
    log = eddymail.json("log", "--channel", "desk")["entries"][0]
    assert log["hint"] == "run eddymail channel authorize desk"
    reports = {r["name"]: r for r in eddymail.json("fetch", "--no-notify", code=3)["channels"]}
    assert reports["desk"]["ok"] is False and reports["plain"]["ok"] is True
    assert eddymail.json("ticket", "list")["tickets"][0]["subject"] == "Hello"


def test_code_flow_without_a_browser_on_a_pop3_channel(
        eddymail, support, dovecot, mail_user, bearer_smtp, oauth_server) -> None:
    client = oauth_server.register_client(access_lifetime=LIFETIME)
    support("desk", *servers(dovecot, mail_user, bearer_smtp, protocol="pop3"),
            *endpoint_options(oauth_server, client, device=False), password=None)
    signed = eddymail.runner.invoke(cli, ["channel", "authorize", "desk", "--no-browser"],
                                    input=BrowserPlayingStdin(oauth_server, mail_user.login))
    assert signed.exit_code == 0, signed.stderr
    dovecot.deliver(mail_user, make_mail(subject="Over POP3", sender="p@example.org"))
    tested = eddymail.json("channel", "test", "desk", "--no-send")["channels"][0]
    assert tested["ok"], tested
    fetched = eddymail.json("fetch", "--no-notify")["channels"][0]
    assert (fetched["ok"], fetched["fetched"]) == (True, 1)


def test_a_token_the_server_stops_taking_early_is_refreshed_and_tried_once_more(
        eddymail, signed_in, dovecot, mail_user, oauth_server) -> None:
    signed_in()
    oauth_server.expire_access_tokens()  # the server ends it; eddymail's copy looks valid
    refreshes = oauth_server.requests["token:refresh_token"]
    dovecot.deliver(mail_user, make_mail(subject="Early", sender="e@example.org"))
    fetched = eddymail.json("fetch", "--no-notify")["channels"][0]
    assert (fetched["ok"], fetched["fetched"]) == (True, 1)
    assert oauth_server.requests["token:refresh_token"] == refreshes + 1


def test_a_token_without_the_mail_scope_is_named_as_such(eddymail, signed_in) -> None:
    signed_in(scopes="smtp")
    tested = eddymail.json("channel", "test", "desk", "--no-send", code=3)["channels"][0]
    incoming = next(c for c in tested["checks"] if c["check"] == "incoming")
    assert not incoming["ok"]
    # Dovecot's OAUTHBEARER challenge names no scope; the hint names the ones asked for.
    assert "status invalid_token" in incoming["answer"]
    assert "(smtp offline_access)" in incoming["hint"] and "--oauth-scope" in incoming["hint"]
    assert next(c for c in tested["checks"] if c["check"] == "outgoing")["ok"]


def test_smtp_auth_switched_off_for_the_tenant_is_named(
        eddymail, support, dovecot, mail_user, make_smtp_server, oauth_server, clock) -> None:
    refusing = make_smtp_server(
        bearer=oauth_server.introspect, bearer_scope="nothing-has-this",
        oauth_failure_reply="535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication "
        "is disabled for the Tenant.")
    client = oauth_server.register_client(access_lifetime=LIFETIME)
    support("desk", *servers(dovecot, mail_user, refusing),
            *endpoint_options(oauth_server, client), password=None)
    clock.on_sleep = [approve_as(oauth_server, mail_user.login)]
    eddymail("channel", "authorize", "desk")
    tested = eddymail.json("channel", "test", "desk", "--no-send", code=3)["channels"][0]
    outgoing = next(c for c in tested["checks"] if c["check"] == "outgoing")
    assert "5.7.139" in outgoing["answer"]
    assert "SMTP AUTH" in outgoing["hint"]


def test_an_unreachable_token_endpoint_is_retried_next_run(
        eddymail, signed_in, dovecot, mail_user, oauth_server, clock) -> None:
    client = signed_in()
    clock.advance(LIFETIME + 1)
    client.token_errors.append((503, "<html>down for maintenance</html>"))
    dovecot.deliver(mail_user, make_mail(subject="Waiting", sender="w@example.org"))
    down = eddymail("fetch", "--no-notify", code=3)
    assert "temporary: the next run tries again" in down.stderr
    fetched = eddymail.json("fetch", "--no-notify")["channels"][0]
    assert (fetched["ok"], fetched["fetched"]) == (True, 1)


def test_a_password_command_that_prints_an_access_token(
        eddymail, support, dovecot, mail_user, bearer_smtp, oauth_server, clock,
        tmp_path) -> None:
    from tests.test_oauth_harness import code_flow

    client = oauth_server.register_client(access_lifetime=LIFETIME)
    token = code_flow(oauth_server, client, mail_user.login, "mail smtp")["access_token"]
    script = tmp_path / "print-token.py"
    script.write_text(f"print({json.dumps(token)})\n")
    support("desk", *servers(dovecot, mail_user, bearer_smtp),
            *endpoint_options(oauth_server, client), "--password-command",
            f"{sys.executable} {script}", password=None)
    refreshes = oauth_server.requests["token:refresh_token"]
    tested = eddymail.json("channel", "test", "desk")["channels"][0]
    assert tested["ok"], tested
    assert tested["sign_in"]["source"] == "command"
    assert oauth_server.requests["token:refresh_token"] == refreshes  # used as it is


def test_a_plaintext_keyring_is_named_as_holding_the_tokens(eddymail, signed_in) -> None:
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    keyring.set_keyring(PlaintextKeyring())  # in the test's XDG_DATA_HOME, never the real one
    signed_in()
    checks = {c["check"]: c for c in eddymail.json("channel", "test", "desk", "--no-send")[
        "channels"][0]["checks"]}
    assert checks["keyring"]["warning"] and "the OAuth tokens are kept unencrypted" in checks[
        "keyring"]["answer"]
    assert "password is" not in checks["keyring"]["answer"]


def test_a_server_without_oauth_is_told_apart_and_costs_no_refresh(
        eddymail, support, dovecot, mail_user, make_smtp_server, oauth_server, clock) -> None:
    plain_only = make_smtp_server()  # offers AUTH PLAIN LOGIN only
    client = oauth_server.register_client(access_lifetime=LIFETIME)
    support("desk", *servers(dovecot, mail_user, plain_only),
            *endpoint_options(oauth_server, client), password=None)
    clock.on_sleep = [approve_as(oauth_server, mail_user.login)]
    eddymail("channel", "authorize", "desk")
    refreshes = oauth_server.requests["token:refresh_token"]
    tested = eddymail.json("channel", "test", "desk", "--no-send", code=3)["channels"][0]
    checks = {c["check"]: c for c in tested["checks"]}
    assert checks["incoming"]["ok"]  # Dovecot takes the token
    assert "announces neither XOAUTH2 nor OAUTHBEARER" in checks["outgoing"]["hint"]
    assert "--smtp-host" in checks["outgoing"]["hint"]
    assert oauth_server.requests["token:refresh_token"] == refreshes  # no new token wasted
