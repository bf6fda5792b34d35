"""OAuth secrets under pressure: no access or refresh token, authorization or device code,
client secret or SASL string (XOAUTH2, OAUTHBEARER) in stdout, stderr (also at -vv), the log
file, the error log, the database file or a traceback, in success and in failure.

The authorization server knows every secret it handed out, so the check covers them all,
plain and inside any base64 run (how SASL strings travel and how servers echo them).
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

import pytest

from tests.adversarial.test_secrets import database_bytes
from tests.harness.oauth_server import OAuthServer
from tests.mailfactory import make_mail
from tests.oauth_helpers import approve_as, endpoint_options

_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{24,}={0,2}")


def assert_no_secrets(texts: dict[str, str | bytes], secrets: list[str]) -> None:
    """None of ``secrets`` in any text, plain or inside a base64 run."""
    assert secrets, "nothing to look for: the test would prove nothing"
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        for secret in secrets:
            assert secret.encode() not in data, f"a secret in {where}"
        for run in _BASE64_RUN.findall(data):
            try:
                decoded = base64.b64decode(run + b"=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            for secret in secrets:
                assert secret.encode() not in decoded, f"a secret inside base64 in {where}"


@pytest.fixture
def oauth_desk(eddymail, support, dovecot, mail_user, make_smtp_server,
               oauth_server: OAuthServer, clock, tmp_path):
    """Channel ``desk`` (IMAP + SMTP) signed in with a confidential client, logging to a file
    at debug level; returns (smtp server, config file, log file, client registration)."""
    smtp = make_smtp_server(
        bearer=oauth_server.introspect,
        oauth_failure_reply="535 5.7.8 credentials {blob} are not valid")
    client = oauth_server.register_client(confidential=True, access_lifetime=600)
    log_file = tmp_path / "eddymail.log"
    config = tmp_path / "eddymail.toml"
    config.write_text(f'[logging]\nlevel = "debug"\nfile = "{log_file}"\n')
    eddymail("channel", "add", "desk", "--department", "Support", "--email", mail_user.address,
             "--login", mail_user.login, "--host", "127.0.0.1", "--port",
             str(dovecot.imaps_port), "--security", "ssl", "--smtp-host", "127.0.0.1",
             "--smtp-port", str(smtp.smtps_port), "--smtp-security", "ssl",
             *endpoint_options(oauth_server, client), "--oauth-client-secret-stdin",
             input=f"{client.client_secret}\n")
    clock.on_sleep = [approve_as(oauth_server, mail_user.login)]
    eddymail("-c", str(config), "-vv", "channel", "authorize", "desk")
    return smtp, config, log_file, client


def test_verbose_runs_that_work_and_fail_leak_no_oauth_secret(
        eddymail, oauth_desk, dovecot, mail_user, oauth_server, clock,
        database_path: Path) -> None:
    smtp, config, log_file, _client = oauth_desk
    dovecot.deliver(mail_user, make_mail("Hello"))
    outputs: dict[str, str | bytes] = {}

    def run(label: str, *args: str, code: int = 0) -> None:
        result = eddymail("-c", str(config), "-vv", *args, code=code)
        outputs[f"{label} stdout"], outputs[f"{label} stderr"] = result.stdout, result.stderr

    run("test", "channel", "test", "desk", "--json")
    run("fetch", "fetch", "--json")
    clock.advance(601)
    run("refreshing fetch", "fetch")
    oauth_server.expire_access_tokens()
    run("retried fetch", "fetch")
    # Refused by SMTP with the SASL string echoed back; then the grant is revoked.
    smtp.bearer_scope = "not-granted"
    run("refused smtp", "channel", "test", "desk", code=3)
    oauth_server.revoke_user(mail_user.login)
    clock.advance(601)
    run("revoked fetch", "fetch", code=3)
    run("revoked test", "channel", "test", "desk", "--json", code=3)
    assert "eddymail channel authorize desk" in str(outputs["revoked fetch stderr"])
    outputs["error log"] = eddymail("log", "--json").stdout
    outputs["log file"] = log_file.read_bytes()
    outputs["database"] = database_bytes(database_path)
    assert b"refreshed the access token" in outputs["log file"]  # it did log, at debug
    assert_no_secrets(outputs, oauth_server.issued_secrets())


def test_a_traceback_that_quotes_a_token_is_scrubbed(eddymail, oauth_desk, oauth_server,
                                                     monkeypatch) -> None:
    _smtp, config, _log, _client = oauth_desk
    from eddymail.mail.wire import sasl

    def buggy(mechanism: str, login: str, token: str, host: str, port: int) -> bytes:
        raise TypeError(f"initial_response() got a token it did not expect: {token!r}")

    monkeypatch.setattr(sasl, "initial_response", buggy)
    result = eddymail("-c", str(config), "-vv", "fetch", code=1)
    assert "Traceback" in result.stderr and "TypeError" in result.stderr
    assert_no_secrets({"stdout": result.stdout, "stderr": result.stderr},
                      oauth_server.issued_secrets())


def test_a_token_endpoint_that_echoes_the_secrets_sent_to_it_is_scrubbed(
        eddymail, oauth_desk, oauth_server, clock, memory_keyring, database_path) -> None:
    import json

    _smtp, config, log_file, client = oauth_desk
    stored = json.loads(memory_keyring.passwords[("eddymail", "desk:oauth-tokens")])
    echoed = f"refresh_token={stored['refresh_token']} client_secret={client.client_secret}"
    client.token_errors.extend([
        (400, {"error": "invalid_grant", "error_description": echoed}),
        (400, {"error": "invalid_request", "error_description": echoed}),
        (503, echoed),
    ])
    outputs: dict[str, str | bytes] = {}
    for attempt in range(3):
        clock.advance(601)  # the access token has expired: a refresh is due
        result = eddymail("-c", str(config), "-vv", "fetch", "--json", code=3)
        outputs[f"stdout {attempt}"], outputs[f"stderr {attempt}"] = (result.stdout,
                                                                      result.stderr)
    assert "invalid_grant" in str(outputs["stderr 0"])  # the server's answer is shown...
    outputs["error log"] = eddymail("log", "--json").stdout
    outputs["log file"] = log_file.read_bytes()
    outputs["database"] = database_bytes(database_path)
    # ...but not what it echoed of the secrets eddymail had sent it.
    assert_no_secrets(outputs, [stored["refresh_token"], client.client_secret])
