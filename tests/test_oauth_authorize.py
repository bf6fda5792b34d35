"""``channel authorize``: the device flow and the code flow with PKCE, through the real CLI,
against the test authorization server (no mail server is needed to get tokens)."""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from eddymail.cli import cli
from eddymail.services.oauth.endpoint import TokenSet
from tests.harness.oauth_server import OAuthServer
from tests.oauth_helpers import (
    BrowserPlayingStdin,
    FakeClock,
    approve_as,
    endpoint_options,
)

USER = "ann@example.test"


@pytest.fixture
def add_oauth_channel(eddymail, support, oauth_server):
    """Add channel NAME (IMAP to a host nobody asks here) signing in at the test server."""

    def add(name: str = "desk", *, device: bool = True, **knobs):
        client = oauth_server.register_client(**knobs)
        support(name, "--email", USER, "--host", "imap.example.test", "--smtp-host",
                "smtp.example.test", *endpoint_options(oauth_server, client, device=device),
                password=None)
        return client

    return add


def stored(memory_keyring, name: str = "desk") -> TokenSet | None:
    return TokenSet.from_json(memory_keyring.passwords.get(("eddymail", f"{name}:oauth-tokens")))


def test_device_flow_shows_the_code_polls_at_the_interval_and_keeps_the_tokens(
        eddymail, add_oauth_channel, oauth_server: OAuthServer, clock: FakeClock,
        memory_keyring) -> None:
    client = add_oauth_channel(device_interval=7)
    shown: list[str] = []
    clock.on_sleep = [lambda: None, lambda: shown.extend(oauth_server.pending_user_codes()),
                      approve_as(oauth_server, USER)]
    result = eddymail("channel", "authorize", "desk", "--json")
    document = json.loads(result.stdout)["authorization"]
    assert document["flow"] == "device"
    assert document["scopes"] == ["mail", "smtp", "offline_access"]
    assert document["refresh_token"] is True
    # What the user saw: the verification address and the very code the server issued.
    assert f"{oauth_server.url}/device/verify" in result.stderr
    assert shown and shown[0] in result.stderr
    # Polled at the server's interval: pending, pending, then the tokens.
    assert clock.sleeps == [7, 7, 7]
    assert oauth_server.requests["token:device_code"] >= 3
    tokens = stored(memory_keyring)
    assert tokens is not None and tokens.refresh_token
    assert oauth_server.refresh_token_is_current(tokens.refresh_token)
    assert client.client_id in eddymail("channel", "show", "desk").stdout
    # Nothing secret in what was printed.
    for text in (result.stdout, result.stderr):
        assert tokens.access_token not in text and tokens.refresh_token not in text


@pytest.mark.parametrize("slow_downs", [1, 3])
def test_slow_down_adds_five_seconds_each_time(eddymail, add_oauth_channel, oauth_server,
                                               clock: FakeClock, memory_keyring,
                                               slow_downs: int) -> None:
    add_oauth_channel(device_interval=2, slow_down_polls=slow_downs)
    clock.on_sleep = [lambda: None] * slow_downs + [approve_as(oauth_server, USER)]
    eddymail("channel", "authorize", "desk")
    # Each slow_down answer makes the next wait five seconds longer, for good.
    assert clock.sleeps == [2 + 5 * i for i in range(slow_downs + 1)]
    assert stored(memory_keyring) is not None


def test_the_device_flow_stops_on_denial_and_on_expiry(eddymail, add_oauth_channel,
                                                      oauth_server, clock: FakeClock,
                                                      memory_keyring) -> None:
    add_oauth_channel(device_interval=5)
    clock.on_sleep = [approve_as(oauth_server, USER, allow=False)]
    denied = eddymail("channel", "authorize", "desk", code=1)
    assert "declined" in denied.stderr and "eddymail channel authorize desk" in denied.stderr

    add_oauth_channel("late", device_interval=5, device_lifetime=30)
    clock.sleeps.clear()
    expired = eddymail("channel", "authorize", "late", code=1)
    assert "expired before anyone signed in" in expired.stderr
    assert sum(clock.sleeps) <= 35  # stopped with the code, not polling on for ever
    assert stored(memory_keyring) is None and stored(memory_keyring, "late") is None


def test_code_flow_without_a_browser_reads_back_the_redirected_address(
        eddymail, add_oauth_channel, oauth_server, memory_keyring) -> None:
    add_oauth_channel(device=False)
    user = BrowserPlayingStdin(oauth_server, USER)
    result = eddymail.runner.invoke(cli, ["channel", "authorize", "desk", "--no-browser",
                                          "--json"], input=user)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["authorization"]["flow"] == "code"
    query = parse_qs(urlsplit(user.visited[0]).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert stored(memory_keyring) is not None


@pytest.mark.parametrize("tamper, message", [
    (lambda a: a.replace("state=", "state=x"), "belongs to another sign-in"),
    (lambda a: "http://127.0.0.1:1/?nothing=here", "has no code and state"),
])
def test_a_pasted_address_with_a_wrong_state_or_no_code_is_refused(
        eddymail, add_oauth_channel, oauth_server, memory_keyring, tamper, message) -> None:
    add_oauth_channel(device=False)
    result = eddymail.runner.invoke(cli, ["channel", "authorize", "desk", "--no-browser"],
                                    input=BrowserPlayingStdin(oauth_server, USER, tamper=tamper))
    assert result.exit_code == 1 and message in result.stderr
    assert stored(memory_keyring) is None


def test_a_declined_browser_sign_in_says_so(eddymail, add_oauth_channel, oauth_server,
                                            memory_keyring) -> None:
    add_oauth_channel(device=False)
    result = eddymail.runner.invoke(cli, ["channel", "authorize", "desk", "--flow", "code",
                                          "--no-browser"],
                                    input=BrowserPlayingStdin(oauth_server, USER, allow=False))
    assert result.exit_code == 1 and "declined" in result.stderr


def test_code_flow_with_a_browser_on_this_machine_uses_a_loopback_listener(
        eddymail, add_oauth_channel, oauth_server, memory_keyring, monkeypatch) -> None:
    add_oauth_channel(device=False)
    visits: list[int] = []

    def browser(url: str) -> bool:
        def visit() -> None:
            target = urlsplit(oauth_server.browser_visit(url, USER))
            connection = http.client.HTTPConnection(target.hostname or "", target.port,
                                                    timeout=10)
            connection.request("GET", f"{target.path}?{target.query}")
            visits.append(connection.getresponse().status)
            connection.close()

        threading.Thread(target=visit, daemon=True).start()
        return True

    monkeypatch.setattr("eddymail.cli.channel_auth.open_browser", browser)
    result = eddymail("channel", "authorize", "desk")
    assert "signed in" in result.stdout and visits == [200]
    assert stored(memory_keyring) is not None


def test_a_refresh_token_from_a_script_is_checked_and_rotated(eddymail, add_oauth_channel,
                                                              oauth_server, memory_keyring,
                                                              clock) -> None:
    add_oauth_channel()
    clock.on_sleep = [approve_as(oauth_server, USER)]
    eddymail("channel", "authorize", "desk")
    first = stored(memory_keyring)
    assert first is not None and first.refresh_token
    # A script hands the refresh token to another channel of the same registration.
    eddymail("channel", "edit", "desk", "--name", "desk2")
    result = eddymail("channel", "authorize", "desk2", "--refresh-token-stdin",
                      input=first.refresh_token + "\n")
    assert "signed in" in result.stdout
    now = stored(memory_keyring, "desk2")
    assert now is not None and now.refresh_token != first.refresh_token
    assert oauth_server.refresh_token_is_current(now.refresh_token or "")
    assert first.refresh_token not in result.stdout + result.stderr
    refused = eddymail("channel", "authorize", "desk2", "--refresh-token-stdin",
                       input="not-a-token\n", code=1)
    assert "token read from stdin was refused" in refused.stderr
    assert "revoked or has expired" in refused.stderr and "nothing was stored" in refused.stderr
    assert stored(memory_keyring, "desk2") == now  # the working sign-in is kept


def test_password_channels_and_missing_registrations_are_told_what_to_do(eddymail, support,
                                                                         oauth_server) -> None:
    support("plain", "--email", "p@example.test", "--host", "imap.example.test")
    refused = eddymail("channel", "authorize", "plain", code=2)
    assert "--auth oauth2" in refused.stderr
    no_client = eddymail("channel", "add", "o", "--department", "Support", "--email",
                         "o@outlook.com", "--auth", "oauth2", code=2)
    assert "--oauth-client-id" in no_client.stderr and "Entra" in no_client.stderr
    insecure = eddymail("channel", "add", "k", "--department", "Support", "--email",
                        "k@example.test", "--host", "imap.example.test", "--auth", "oauth2",
                        "--oauth-client-id", "x", "--oauth-token-url",
                        "http://idp.example.test/token", "--oauth-device-url",
                        "https://idp.example.test/device", code=2)
    assert "https://" in insecure.stderr
    pop_at_yandex = eddymail("channel", "add", "y", "--department", "Support", "--email",
                             "y@yandex.ru", "--protocol", "pop3", "--auth", "oauth2",
                             "--oauth-client-id", "x", code=2)
    assert "IMAP and SMTP only" in pop_at_yandex.stderr


def test_channel_add_at_a_terminal_offers_to_sign_in_right_away(
        eddymail, support, oauth_server, clock: FakeClock, memory_keyring, monkeypatch) -> None:
    from eddymail.cli import channel_add as channel_commands

    client = oauth_server.register_client(device_interval=5)
    real_may_ask = channel_commands._may_ask
    monkeypatch.setattr(channel_commands, "_may_ask", lambda password_stdin: True)  # a terminal
    clock.on_sleep = [approve_as(oauth_server, USER)]
    result = eddymail("channel", "add", "desk", "--department", "Support", "--email", USER,
                      "--host", "imap.example.test", "--no-connect",
                      *endpoint_options(oauth_server, client), input="y\n")
    assert "Sign channel desk in now?" in result.stderr
    assert "signed in" in result.stdout and stored(memory_keyring) is not None
    # A script (no terminal) is told the command instead of being asked.
    monkeypatch.setattr(channel_commands, "_may_ask", real_may_ask)
    later = eddymail("channel", "add", "desk2", "--department", "Support", "--email", USER,
                     "--host", "imap.example.test", *endpoint_options(oauth_server, client),
                     "--json")
    assert json.loads(later.stdout)["authorization"] is None
    assert stored(memory_keyring, "desk2") is None


def test_a_client_secret_given_once_serves_every_channel_of_that_registration(
        eddymail, support, oauth_server, clock: FakeClock, memory_keyring) -> None:
    client = oauth_server.register_client(confidential=True, device_interval=5)
    entry = ("eddymail", f"client/{client.client_id}:oauth-client-secret")

    def add(name: str, *flags: str, stdin: str | None = None) -> None:
        eddymail("channel", "add", name, "--department", "Support", "--email", USER, "--host",
                 "imap.example.test", "--no-connect", *endpoint_options(oauth_server, client),
                 *flags, input=stdin)

    add("first", "--oauth-client-secret-stdin", stdin=f"{client.client_secret}\n")
    clock.on_sleep = [approve_as(oauth_server, USER)]
    eddymail("channel", "authorize", "first")
    first = stored(memory_keyring, "first")
    assert first is not None and first.refresh_token
    # A second channel of the registration: no secret given, yet the server (which wants
    # one from this confidential client) takes its refresh token at channel add.
    add("second", "--refresh-token-stdin", stdin=f"{first.refresh_token}\n")
    second = stored(memory_keyring, "second")
    assert second is not None and oauth_server.refresh_token_is_current(second.refresh_token)
    assert eddymail.json("channel", "show", "second")["channel"]["oauth"][
        "client_secret_stored"] is True
    # Both on stdin, the secret first; then a wrong secret is refused by the server.
    add("third", "--oauth-client-secret-stdin", "--refresh-token-stdin",
        stdin=f"{client.client_secret}\n{second.refresh_token}\n")
    assert stored(memory_keyring, "third") is not None
    assert memory_keyring.passwords[entry] == client.client_secret
    eddymail("channel", "edit", "third", "--oauth-client-secret-stdin", input="wrong\n")
    clock.advance(client.access_lifetime)  # the next use refreshes, with the wrong secret
    checks = eddymail.json("channel", "test", "third", "--no-send", code=3)["channels"][0][
        "checks"]
    assert checks[0]["check"] == "sign-in" and "invalid_client" in checks[0]["answer"]
    # The secret leaves the keyring with the last channel of the registration.
    for name in ("first", "second"):
        eddymail("channel", "remove", name, "--yes")
        assert entry in memory_keyring.passwords
    eddymail("channel", "remove", "third", "--yes")
    assert entry not in memory_keyring.passwords
    assert not [user for _service, user in memory_keyring.passwords if "secret" in user]


@pytest.mark.parametrize("leave", [("--oauth-client-id", "another-registration"),
                                   ("--auth", "password")])
def test_a_channel_edited_off_a_registration_takes_its_secret_along_when_last(
        eddymail, support, oauth_server, memory_keyring, leave) -> None:
    client = oauth_server.register_client(confidential=True)
    entry = ("eddymail", f"client/{client.client_id}:oauth-client-secret")
    for name in ("one", "two"):
        eddymail("channel", "add", name, "--department", "Support", "--email", USER, "--host",
                 "imap.example.test", "--no-connect", *endpoint_options(oauth_server, client),
                 "--oauth-client-secret-stdin", input=f"{client.client_secret}\n")
    assert memory_keyring.passwords[entry] == client.client_secret
    # "two" still signs in with the registration: its secret stays.
    eddymail("channel", "edit", "one", *leave, input="new-password\n")
    assert memory_keyring.passwords[entry] == client.client_secret
    eddymail("channel", "edit", "two", *leave, input="new-password\n")
    assert entry not in memory_keyring.passwords
    for name in ("one", "two"):
        oauth = eddymail.json("channel", "show", name)["channel"]["oauth"]
        assert oauth is None or oauth["client_id"] == "another-registration"


def test_a_team_gives_a_providers_client_id_and_secret_once(eddymail, support, tmp_path,
                                                            memory_keyring) -> None:
    config = tmp_path / "team.toml"
    config.write_text('[oauth.gmail]\nclient_id = "team-app.apps.googleusercontent.com"\n')
    for name, flags in (("g1", ["--oauth-client-secret-stdin"]), ("g2", [])):
        eddymail("-c", str(config), "channel", "add", name, "--department", "Support",
                 "--email", f"{name}@gmail.com", "--auth", "oauth2", "--no-connect", *flags,
                 input="team-secret\n" if flags else None)
    for name in ("g1", "g2"):
        oauth = eddymail.json("-c", str(config), "channel", "show", name)["channel"]["oauth"]
        assert oauth["client_id"] == "team-app.apps.googleusercontent.com"
        assert oauth["client_secret_stored"] is True
    assert memory_keyring.passwords == {
        ("eddymail", "client/team-app.apps.googleusercontent.com:oauth-client-secret"):
            "team-secret"}


@pytest.mark.parametrize("url", ["https://[::1", "https://idp.example.test:port/token",
                                 "ftp://idp.example.test/token", "idp.example.test/token"])
def test_a_malformed_endpoint_url_is_a_usage_error(eddymail, support, url) -> None:
    refused = eddymail("channel", "add", "k", "--department", "Support", "--email",
                       "k@example.test", "--host", "imap.example.test", "--auth", "oauth2",
                       "--oauth-client-id", "x", "--oauth-token-url", url,
                       "--oauth-device-url", "https://idp.example.test/device", code=2)
    assert "--oauth-token-url" in refused.stderr and "bug" not in refused.stderr


def test_a_tenant_is_refused_where_no_endpoint_would_use_it(eddymail, support) -> None:
    def add(name: str, *options: str, code: int = 0):
        return eddymail("channel", "add", name, "--department", "Support", "--auth", "oauth2",
                        "--oauth-client-id", "x", "--oauth-tenant", "contoso.com", "--no-connect",
                        *options, code=code)

    for options in (["--email", "g@gmail.com"],
                    ["--email", "k@example.test", "--host", "imap.example.test",
                     "--oauth-device-url", "https://idp.example.test/device",
                     "--oauth-token-url", "https://idp.example.test/token"]):
        assert "--oauth-tenant goes with" in add("k", *options, code=2).stderr
    add("m", "--email", "desk@contoso.com", "--preset", "outlook")
    oauth = eddymail.json("channel", "show", "m")["channel"]["oauth"]
    assert oauth["tenant"] == "contoso.com" and "/contoso.com/" in oauth["token_url"]
