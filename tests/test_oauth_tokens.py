"""The token store: refresh shortly before expiry, rotation kept, one refresh at a time, token
endpoint failures that say what to do, and password commands that print tokens."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from eddymail.errors import AuthorizationRequired, OAuthError
from eddymail.services.oauth import store
from eddymail.services.oauth.endpoint import TokenSet
from eddymail.services.oauth.settings import OAuthSettings, oauth_settings
from tests.harness.oauth_server import OAuthClient, OAuthServer
from tests.oauth_helpers import FakeClock

NAME = "desk"


def settings_for(server: OAuthServer, client: OAuthClient, *, ca_file: Path | None = None,
                 token_url: str | None = None, name: str = NAME) -> OAuthSettings:
    channel = SimpleNamespace(
        name=name, preset=None, protocol="imap", smtp_host="", ca_file=str(
            ca_file or server.pki.ca_file),
        oauth_client_id=client.client_id, oauth_tenant="",
        oauth_authorize_url=server.endpoint("authorize"),
        oauth_token_url=token_url or server.endpoint("token"),
        oauth_device_url=server.endpoint("device"), oauth_scopes=["mail", "offline_access"])
    return oauth_settings(channel)  # type: ignore[arg-type]


def granted(server: OAuthServer, client: OAuthClient, clock: FakeClock,
            user: str = "ann") -> TokenSet:
    """Tokens for ``user`` got through the device flow, stored as ``channel authorize`` does."""
    from eddymail.services.oauth.endpoint import TokenEndpoint

    endpoint = TokenEndpoint(settings_for(server, client), None, clock=clock.now)
    device = endpoint.start_device()
    server.approve_device(device.user_code, user)
    tokens = endpoint.poll_device(device.device_code)
    store.save_tokens(NAME, tokens)
    return tokens


def test_a_token_is_refreshed_only_shortly_before_it_expires(oauth_server, clock) -> None:
    client = oauth_server.register_client(access_lifetime=3600)
    first = granted(oauth_server, client, clock)
    settings = settings_for(oauth_server, client)
    before = oauth_server.requests["token:refresh_token"]
    same = store.access_token(settings, None, timeout=10)
    assert same.token == first.access_token and not same.fresh
    clock.advance(3600 - store.LEEWAY + 1)
    renewed = store.access_token(settings, None, timeout=10)
    assert renewed.fresh and renewed.token != first.access_token
    assert oauth_server.requests["token:refresh_token"] == before + 1
    kept = store.load_tokens(NAME)
    assert kept is not None and kept.access_token == renewed.token
    # The rotated refresh token was kept; the old one is spent.
    assert kept.refresh_token and kept.refresh_token != first.refresh_token
    assert oauth_server.refresh_token_is_current(kept.refresh_token)
    assert not oauth_server.refresh_token_is_current(first.refresh_token or "")


def test_a_token_a_server_rejected_is_replaced_even_if_it_looks_valid(oauth_server,
                                                                      clock) -> None:
    client = oauth_server.register_client(access_lifetime=3600)
    first = granted(oauth_server, client, clock)
    renewed = store.access_token(settings_for(oauth_server, client), None, timeout=10,
                                 rejected=first.access_token)
    assert renewed.fresh and renewed.token != first.access_token


@pytest.fixture
def oauth_log(monkeypatch: pytest.MonkeyPatch):
    """Records of ``eddymail.oauth`` at DEBUG, whatever the configured level."""
    logger = logging.getLogger("eddymail.oauth")
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    logger.addHandler(handler)
    yield records, handler
    logger.removeHandler(handler)


def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
        oauth_server: OAuthServer, clock: FakeClock, oauth_log) -> None:
    records, handler = oauth_log
    gate = threading.Event()
    client = oauth_server.register_client(access_lifetime=600, refresh_gate=gate)
    granted(oauth_server, client, clock)
    clock.advance(600)  # expired: both need a refresh
    settings = settings_for(oauth_server, client)
    before = oauth_server.requests["token:refresh_token"]  # the server is the session's
    # The first refresh is held at the server until the second caller waits for the lock.
    emit = handler.emit

    def watch(record: logging.LogRecord) -> None:
        emit(record)
        if "waiting" in record.getMessage():
            gate.set()

    handler.emit = watch  # type: ignore[method-assign]
    fallback = threading.Timer(20, gate.set)  # if the second never waits: fail, do not hang
    fallback.daemon = True
    fallback.start()
    results: dict[str, object] = {}

    def refresh(who: str) -> None:
        try:
            results[who] = store.access_token(settings, None, timeout=30).token
        except Exception as error:  # reported by the assertion below
            results[who] = error

    first = threading.Thread(target=refresh, args=("first",))
    first.start()
    while oauth_server.requests["token:refresh_token"] == before and first.is_alive():
        threading.Event().wait(0.01)
    second = threading.Thread(target=refresh, args=("second",))
    second.start()
    first.join(60)
    second.join(60)
    fallback.cancel()
    assert any("waiting" in r.getMessage() for r in records), "the second did not wait"
    assert isinstance(results["first"], str) and results["first"] == results["second"]
    assert oauth_server.requests["token:refresh_token"] == before + 1
    kept = store.load_tokens(NAME)
    assert kept is not None and oauth_server.refresh_token_is_current(kept.refresh_token or "")


def test_a_revoked_grant_asks_for_a_new_sign_in(oauth_server, clock) -> None:
    client = oauth_server.register_client(access_lifetime=60)
    granted(oauth_server, client, clock, user="bob")
    oauth_server.revoke_user("bob")
    clock.advance(60)
    with pytest.raises(AuthorizationRequired) as caught:
        store.access_token(settings_for(oauth_server, client), None, timeout=10)
    assert caught.value.hint == f"run eddymail channel authorize {NAME}"
    assert "invalid_grant" in caught.value.answer


def test_never_authorized_says_how(oauth_server) -> None:
    client = oauth_server.register_client()
    with pytest.raises(AuthorizationRequired, match="has not been authorized yet"):
        store.access_token(settings_for(oauth_server, client), None, timeout=10)


@pytest.mark.parametrize("answer, message, hint", [
    ((503, "<html>Service Unavailable</html>"), "could not be reached", "temporary"),
    ((400, {"error": "invalid_grant", "error_description":
            "AADSTS65001: The user or administrator has not consented to use the application."
            "\r\nTrace ID: 1"}), "nobody consented", "administrator"),
    ((400, {"error": "invalid_client", "error_description": "AADSTS7000218: The request body "
            "must contain client_assertion or client_secret."}), "not set up as a public client",
     "Allow public client flows"),
    ((400, {"error": "invalid_scope"}), "scopes asked for are not allowed", "mail"),
    ((400, {"error": "temporarily_unavailable"}), "not available right now", "temporary"),
    # Garbage with a 200: a captive portal, a proxy, a broken server.
    ((200, "<html>Sign in to the hotel Wi-Fi</html>"), "not an OAuth 2.0 answer", "temporary"),
    ((200, "[1, 2]"), "not an OAuth 2.0 answer", "temporary"),
    ((200, {"access_token": "a", "token_type": "Bearer", "expires_in": "NaN"}),
     "not an OAuth 2.0 answer", "temporary"),
    ((200, {"token_type": "Bearer"}), "granted no access token", ""),
    ((200, {"access_token": 123, "token_type": "Bearer"}), "granted no access token", ""),
])
def test_token_endpoint_refusals_name_the_cause(oauth_server, clock, answer, message,
                                                hint) -> None:
    client = oauth_server.register_client(access_lifetime=60)
    granted(oauth_server, client, clock)
    clock.advance(60)
    client.token_errors.append(answer)
    with pytest.raises(OAuthError) as caught:
        store.access_token(settings_for(oauth_server, client), None, timeout=10)
    assert message in caught.value.message and hint in (caught.value.hint or "")
    # Nothing was lost: the stored refresh token still works next time.
    assert store.access_token(settings_for(oauth_server, client), None, timeout=10).fresh


def test_an_unreachable_or_untrusted_token_endpoint_is_temporary_or_a_tls_hint(
        oauth_server, clock, pki, tmp_path) -> None:
    client = oauth_server.register_client(access_lifetime=60)
    granted(oauth_server, client, clock)
    clock.advance(60)
    from tests.harness import free_port

    closed = f"https://127.0.0.1:{free_port()}/token"
    with pytest.raises(OAuthError) as down:
        store.access_token(settings_for(oauth_server, client, token_url=closed), None,
                           timeout=5)
    assert down.value.hint == "temporary: the next run tries again"
    other_ca = tmp_path / "other-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(other_ca))
    with pytest.raises(OAuthError) as untrusted:
        store.access_token(settings_for(oauth_server, client, ca_file=other_ca), None,
                           timeout=5)
    assert untrusted.value.tls and "--ca-file" in (untrusted.value.hint or "")


@pytest.mark.parametrize("printed, kind", [
    ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "access"),
    ("ya29.a0AfB_byC", "access"),
    ("y0_AgAAAAB", "access"),
    ('{"access_token": "opaque-123"}', "access"),
    ('{"refresh_token": "r-1", "scope": "mail"}', "refresh"),
    ("1//0gLongOpaqueRefreshToken", "refresh"),
    ("M.C105_BAY.0.U.-Cq", "refresh"),
])
def test_what_a_password_command_prints_is_told_apart(printed, kind) -> None:
    assert store.classify_command_output(printed + "\n")[0] == kind


def test_a_password_command_with_a_refresh_token_refreshes_once_per_process(
        oauth_server, clock, tmp_path) -> None:
    client = oauth_server.register_client(access_lifetime=3600, issue_refresh_tokens=True)
    tokens = granted(oauth_server, client, clock)
    script = tmp_path / "token.py"
    script.write_text(f"print({tokens.refresh_token!r})\n")
    settings = settings_for(oauth_server, client, name="cmd")
    before = oauth_server.requests["token:refresh_token"]
    first = store.access_token(settings, [sys.executable, str(script)], timeout=10)
    again = store.access_token(settings, [sys.executable, str(script)], timeout=10)
    assert first.source == "command" and first.fresh and not again.fresh
    assert again.token == first.token
    assert oauth_server.requests["token:refresh_token"] == before + 1


@pytest.mark.parametrize("answer, status, scope, expected", [
    ("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
     "Tenant.", "", "", "SMTP AUTH) is switched off"),
    ("NO [AUTHENTICATIONFAILED]", "401", "https://mail.google.com/", "does not carry the scope"),
    ("NO [AUTHENTICATIONFAILED]", "insufficient_scope", "", "does not carry the scope"),
    ("NO [AUTHENTICATIONFAILED]", "401", "mail", "a fresh token was refused"),
    ("-ERR [AUTH] Authentication failed.", "", "", "a fresh token was refused"),
])
def test_a_refused_fresh_token_gets_the_hint_that_fits(oauth_server, answer, status, scope,
                                                        expected) -> None:
    from eddymail.errors import BearerRefused
    from eddymail.services.oauth import diagnosis

    settings = settings_for(oauth_server, oauth_server.register_client())
    refused = BearerRefused("refused", status=status, scope=scope, answer=answer,
                            operation="smtp login")
    hint = diagnosis.refused_token(settings, refused, "smtp").hint or ""
    assert expected in hint
    if "5.7.139" not in answer:  # the tenant's setting: signing in again would not help
        assert "eddymail channel authorize desk" in hint
