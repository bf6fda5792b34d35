"""The OAuth test servers hold to the RFCs, so a client that cuts a corner fails against them.

Spoken to with the standard library only (not eddymail's client): the authorization server's
grants, PKCE, rotation, device polling rules, introspection and revocation; Dovecot's
``oauth2`` passdb; and the SMTP server's XOAUTH2/OAUTHBEARER handlers.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import imaplib
import json
import poplib
import secrets
import smtplib
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.harness.dovecot import DovecotServer, MailUser
from tests.harness.oauth_server import DEVICE_GRANT, OAuthClient, OAuthServer

REDIRECT = "http://127.0.0.1:8765/"


def post(server: OAuthServer, path: str, form: dict[str, str],
         basic: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{basic[0]}:{basic[1]}".encode()).decode()
    connection = http.client.HTTPSConnection(server.host, server.https_port,
                                             context=server.pki.client_context(), timeout=10)
    try:
        connection.request("POST", f"/{path}", body=urlencode(form), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def challenge_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(40)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_flow(server: OAuthServer, client: OAuthClient, user: str,
              scope: str = "mail smtp offline_access") -> dict[str, Any]:
    verifier, challenge = challenge_pair()
    url = server.endpoint("authorize") + "?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": scope, "state": "s1", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    redirect = parse_qs(urlsplit(server.browser_visit(url, user)).query)
    assert redirect["state"] == ["s1"]
    status, token = post(server, "token", {
        "grant_type": "authorization_code", "code": redirect["code"][0],
        "redirect_uri": REDIRECT, "client_id": client.client_id, "code_verifier": verifier})
    assert status == 200, token
    return token


def test_code_flow_needs_the_right_pkce_verifier_and_a_code_works_once(
        oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client()
    _verifier, challenge = challenge_pair()
    url = oauth_server.endpoint("authorize") + "?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
        "scope": "mail", "state": "x", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    code = parse_qs(urlsplit(oauth_server.browser_visit(url, "ann")).query)["code"][0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": client.client_id, "code_verifier": challenge_pair()[0]}
    assert post(oauth_server, "token", form) == (
        400, {"error": "invalid_grant", "error_description": "PKCE failed"})
    # The code was spent by the failed attempt.
    assert post(oauth_server, "token", form)[1]["error"] == "invalid_grant"


def test_authorization_without_pkce_or_with_a_foreign_scope_is_refused(
        oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client()
    base = {"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT,
            "state": "q"}
    no_pkce = oauth_server.browser_visit(
        oauth_server.endpoint("authorize") + "?" + urlencode({**base, "scope": "mail"}), "ann")
    assert parse_qs(urlsplit(no_pkce).query)["error"] == ["invalid_request"]
    _verifier, challenge = challenge_pair()
    foreign = oauth_server.browser_visit(oauth_server.endpoint("authorize") + "?" + urlencode(
        {**base, "scope": "calendar", "code_challenge": challenge,
         "code_challenge_method": "S256"}), "ann")
    assert parse_qs(urlsplit(foreign).query)["error"] == ["invalid_scope"]
    denied = oauth_server.browser_visit(oauth_server.endpoint("authorize") + "?" + urlencode(
        {**base, "scope": "mail", "code_challenge": challenge,
         "code_challenge_method": "S256"}), "ann", allow=False)
    assert parse_qs(urlsplit(denied).query) == {
        "error": ["access_denied"], "error_description": ["The user declined."], "state": ["q"]}


def test_refresh_rotates_and_a_replayed_refresh_token_ends_the_grant(
        oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client()
    first = code_flow(oauth_server, client, "ann")
    refresh = {"grant_type": "refresh_token", "client_id": client.client_id}
    status, second = post(oauth_server, "token", {**refresh,
                                                  "refresh_token": first["refresh_token"]})
    assert status == 200 and second["refresh_token"] != first["refresh_token"]
    assert oauth_server.introspect(second["access_token"])["active"] is True
    # The old one again: refused, and the newer one dies with it.
    assert post(oauth_server, "token", {**refresh, "refresh_token": first["refresh_token"]}
                )[1]["error"] == "invalid_grant"
    assert not oauth_server.refresh_token_is_current(second["refresh_token"])
    assert oauth_server.introspect(second["access_token"]) == {"active": False}


def test_a_confidential_client_must_authenticate(oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client(confidential=True)
    form = {"client_id": client.client_id, "scope": "mail"}
    status, device = post(oauth_server, "device", form)
    assert status == 200
    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"],
            "client_id": client.client_id}
    assert post(oauth_server, "token", poll)[0] == 401
    assert post(oauth_server, "token", {**poll, "client_secret": "wrong"})[0] == 401
    assert client.client_secret is not None
    answer = post(oauth_server, "token", {}, basic=(client.client_id, client.client_secret))
    assert answer[1]["error"] == "unsupported_grant_type"  # authenticated, then judged


def test_device_polling_pending_slow_down_approval_and_denial(
        oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client(device_interval=5,
                                          verification_field="verification_url")
    status, device = post(oauth_server, "device", {"client_id": client.client_id,
                                                   "scope": "mail offline_access"})
    assert status == 200 and device["interval"] == 5 and "verification_url" in device
    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"],
            "client_id": client.client_id}
    assert post(oauth_server, "token", poll)[1]["error"] == "authorization_pending"
    # Too early: slow_down, and from now on 10 seconds are expected.
    oauth_server.advance(3)
    assert post(oauth_server, "token", poll)[1]["error"] == "slow_down"
    oauth_server.advance(6)
    assert post(oauth_server, "token", poll)[1]["error"] == "slow_down"
    oauth_server.advance(15)
    assert post(oauth_server, "token", poll)[1]["error"] == "authorization_pending"
    oauth_server.approve_device(device["user_code"], "ann")
    oauth_server.advance(15)
    status, token = post(oauth_server, "token", poll)
    assert status == 200 and token["scope"] == "mail offline_access"
    assert oauth_server.introspect(token["access_token"])["username"] == "ann"

    _, other = post(oauth_server, "device", {"client_id": client.client_id, "scope": "mail"})
    oauth_server.approve_device(other["user_code"], "ann", allow=False)
    denied = {**poll, "device_code": other["device_code"]}
    assert post(oauth_server, "token", denied)[1]["error"] == "access_denied"


def test_device_codes_expire(oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client(device_lifetime=60)
    _, device = post(oauth_server, "device", {"client_id": client.client_id, "scope": "mail"})
    oauth_server.advance(61)
    poll = {"grant_type": DEVICE_GRANT, "device_code": device["device_code"],
            "client_id": client.client_id}
    assert post(oauth_server, "token", poll) == (400, {"error": "expired_token"})


def test_access_tokens_are_short_lived_and_revocation_ends_the_grant(
        oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client(access_lifetime=60)
    token = code_flow(oauth_server, client, "bob")
    assert token["expires_in"] == 60 and len(token["access_token"]) > 1000
    oauth_server.advance(61)
    assert oauth_server.introspect(token["access_token"]) == {"active": False}
    assert post(oauth_server, "revoke", {"token": token["refresh_token"],
                                         "client_id": client.client_id})[0] == 200
    assert not oauth_server.refresh_token_is_current(token["refresh_token"])


def test_introspection_needs_the_resource_servers_credentials(oauth_server: OAuthServer
                                                             ) -> None:
    client = oauth_server.register_client()
    token = code_flow(oauth_server, client, "cy")["access_token"]
    assert post(oauth_server, "introspect", {"token": token})[0] == 401
    status, facts = post(oauth_server, "introspect", {"token": token},
                         basic=("dovecot", oauth_server.resource_secret))
    assert status == 200 and facts["active"] is True and facts["username"] == "cy"


# --- Dovecot's oauth2 passdb and the SMTP handlers ----------------------------------------------


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer(user: str, token: str, port: int) -> bytes:
    return f"n,a={user},\x01host=127.0.0.1\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


def test_dovecot_takes_a_valid_token_over_imap_and_pop3(
        dovecot: DovecotServer, mail_user: MailUser, oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client()
    token = code_flow(oauth_server, client, mail_user.login)["access_token"]
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    assert "AUTH=XOAUTH2" in imap.capabilities and "AUTH=OAUTHBEARER" in imap.capabilities
    assert imap.authenticate("XOAUTH2", lambda _: xoauth2(mail_user.login, token))[0] == "OK"
    imap.logout()
    pop = poplib.POP3(dovecot.host, dovecot.pop3_port)
    answer = pop._shortcmd("AUTH OAUTHBEARER " + base64.b64encode(  # type: ignore[attr-defined]
        oauthbearer(mail_user.login, token, dovecot.pop3_port)).decode())
    assert answer.startswith(b"+OK")
    pop.quit()


@pytest.mark.parametrize("what", ["expired", "wrong scope", "someone else's"])
def test_dovecot_refuses_a_bad_token_with_the_error_challenge(
        dovecot: DovecotServer, mail_user: MailUser, oauth_server: OAuthServer,
        what: str) -> None:
    client = oauth_server.register_client(access_lifetime=60)
    scope = "smtp offline_access" if what == "wrong scope" else "mail offline_access"
    owner = "somebody-else" if what == "someone else's" else mail_user.login
    token = code_flow(oauth_server, client, owner, scope)["access_token"]
    if what == "expired":
        oauth_server.expire_access_tokens()
    challenges: list[bytes] = []

    def answer(challenge: bytes) -> bytes:
        challenges.append(challenge)
        return xoauth2(mail_user.login, token) if len(challenges) == 1 else b""

    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.authenticate("XOAUTH2", answer)
    assert json.loads(challenges[-1]) == {"status": "401", "schemes": "bearer", "scope": "mail"}


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_smtp_takes_a_valid_token_and_refuses_a_revoked_one(
        make_smtp_server: Any, oauth_server: OAuthServer, mechanism: str) -> None:
    server = make_smtp_server(bearer=oauth_server.introspect)
    client = oauth_server.register_client()
    token = code_flow(oauth_server, client, "dee")["access_token"]

    def blob(_challenge: bytes | None = None) -> str:
        raw = (xoauth2("dee", token) if mechanism == "XOAUTH2"
               else oauthbearer("dee", token, server.smtps_port))
        return raw.decode()

    with smtplib.SMTP_SSL(server.host, server.smtps_port,
                          context=server.pki.client_context()) as smtp:
        smtp.ehlo()
        assert mechanism in smtp.esmtp_features["auth"].split()
        assert smtp.auth(mechanism, blob)[0] == 235
    oauth_server.revoke_user("dee")
    challenges: list[bytes | None] = []

    def second(challenge: bytes | None = None) -> str:
        challenges.append(challenge)
        if challenge is None:
            return blob()
        return "" if mechanism == "XOAUTH2" else "\x01"

    with smtplib.SMTP_SSL(server.host, server.smtps_port,
                          context=server.pki.client_context()) as smtp:
        smtp.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth(mechanism, second)
    assert refused.value.smtp_code == 535
    assert json.loads(challenges[-1] or b"")["scope"] == "smtp"
    assert [a.success for a in server.auth_attempts] == [True, False]
