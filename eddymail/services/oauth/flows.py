"""Getting a channel's first tokens: the device flow, or the authorization code flow with PKCE.

Device flow (RFC 8628): show the verification URL and the user code, then poll politely: at
the interval the server asked for, five seconds more after each ``slow_down``, and no
longer than the code lives. A denial or an expired code ends it with a sentence.

Code flow (RFC 6749 §4.1 with PKCE, RFC 7636, and a loopback redirect, RFC 8252 §7.3): with a
browser on this machine a one-shot listener on 127.0.0.1 receives the redirect; with
``no_browser`` the user opens the URL on any machine and pastes back the address the browser
was sent to (nothing listens there, the address bar still shows it). Either way ``state``
must come back unchanged.

The person at the terminal is reached through an :class:`Interaction` the CLI provides, so
this layer never prints or reads a terminal itself.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from eddymail.errors import OAuthError
from eddymail.services.oauth import diagnosis
from eddymail.services.oauth.endpoint import DevicePending, TokenSet
from eddymail.services.oauth.settings import OAuthSettings
from eddymail.services.oauth.store import endpoint_for

#: How the device flow waits between polls; tests replace it with a fake that lets time pass.
sleep: Callable[[float], None] = time.sleep
SLOW_DOWN_STEP = 5.0  # seconds, RFC 8628 §3.5
#: Seconds the loopback listener waits for the browser to come back.
BROWSER_WAIT = 300.0
_DONE_PAGE = (b"<!doctype html><title>eddymail</title><p>eddymail received the sign-in. "
              b"You can close this window and return to the terminal.</p>")


@dataclass(frozen=True)
class DevicePrompt:
    """What the user needs for the device flow."""

    verification_uri: str
    user_code: str
    verification_uri_complete: str | None
    expires_in: float


class Interaction(Protocol):
    """How a flow reaches the person at the terminal (implemented by the CLI)."""

    def show_device(self, prompt: DevicePrompt) -> None:
        """Show where to sign in and the code to type."""

    def show_url(self, url: str, browser: bool) -> None:
        """Show the authorization URL (``browser``: a browser was asked to open it)."""

    def open_browser(self, url: str) -> bool:
        """Open ``url`` in a browser on this machine; False when there is none."""

    def read_redirect(self) -> str:
        """The address the browser was sent to, as the user pastes it."""


def device_flow(settings: OAuthSettings, interaction: Interaction, *,
                timeout: float) -> TokenSet:
    """Run the device flow to the end; raises ``OAuthError`` on denial or expiry."""
    endpoint = endpoint_for(settings, timeout)
    device = endpoint.start_device()
    interaction.show_device(DevicePrompt(device.verification_uri, device.user_code,
                                         device.verification_uri_complete, device.expires_in))
    interval = max(device.interval, 1.0)
    waited = 0.0
    while True:
        if waited >= device.expires_in:
            raise diagnosis.refusal(settings, "oauth device", "expired_token",
                                    f"no sign-in within {device.expires_in:g} seconds")
        sleep(interval)
        waited += interval
        try:
            return endpoint.poll_device(device.device_code)
        except DevicePending as pending:
            if pending.slow_down:
                interval += SLOW_DOWN_STEP


def code_flow(settings: OAuthSettings, interaction: Interaction, *, timeout: float,
              no_browser: bool) -> TokenSet:
    """Run the authorization code flow with PKCE; raises ``OAuthError`` when it fails."""
    endpoint = endpoint_for(settings, timeout)
    verifier, state = secrets.token_urlsafe(64), secrets.token_urlsafe(24)
    if no_browser:
        redirect_uri = _redirect_uri(settings, _free_port())
        interaction.show_url(endpoint.authorization_url(redirect_uri, state, verifier), False)
        answer = interaction.read_redirect()
    else:
        with _Listener() as listener:
            redirect_uri = _redirect_uri(settings, listener.port)
            url = endpoint.authorization_url(redirect_uri, state, verifier)
            opened = interaction.open_browser(url)
            interaction.show_url(url, opened)
            answer = listener.wait(BROWSER_WAIT)
    code = _code_from(settings, answer, state)
    return endpoint.exchange_code(code, redirect_uri, verifier)


def _redirect_uri(settings: OAuthSettings, port: int) -> str:
    return f"http://{settings.redirect_host}:{port}/"


def _code_from(settings: OAuthSettings, answer: str, state: str) -> str:
    """The code in the redirect address (or its query), after checking ``state``."""
    text = answer.strip()
    query = urlsplit(text).query if "://" in text else text.lstrip("?")
    params = {key: values[-1] for key, values in parse_qs(query).items()}
    if "error" in params:
        raise diagnosis.refusal(settings, "oauth authorize", params["error"],
                                params.get("error_description", ""))
    if "code" not in params or "state" not in params:
        raise OAuthError(
            "That is not the address the browser was sent to after signing in (it has no "
            "code and state).", operation="oauth authorize",
            hint="copy the whole address from the browser's address bar, even if the page "
            "itself shows an error; it starts with http://" + settings.redirect_host)
    if not secrets.compare_digest(params["state"], state):
        raise OAuthError("The address belongs to another sign-in (its state does not match); "
                         "nothing was stored.", operation="oauth authorize",
                         hint="start again and paste the address of this sign-in")
    return params["code"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Listener:
    """A one-shot HTTP listener on 127.0.0.1 for the browser's redirect."""

    def __init__(self) -> None:
        self.answer: str | None = None
        self._arrived = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urlsplit(self.path).query
                if "code=" not in query and "error=" not in query:
                    self.send_error(404)  # a favicon or a stray visitor: not the redirect
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(_DONE_PAGE)))
                self.end_headers()
                self.wfile.write(_DONE_PAGE)
                if owner.answer is None:
                    owner.answer = query
                    owner._arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query holds the code: never logged

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="eddymail-oauth-redirect", daemon=True)

    def __enter__(self) -> _Listener:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, seconds: float) -> str:
        """The redirect's query; ``OAuthError`` when none came within ``seconds``."""
        if not self._arrived.wait(seconds) or self.answer is None:
            raise OAuthError(f"The browser did not come back within {seconds:g} seconds.",
                             operation="oauth authorize",
                             hint="run the command again; on a machine without a browser "
                             "use --no-browser")
        return self.answer
