"""A small OAuth 2.0 authorization server on loopback, playing the mail provider in tests.

It implements what eddymail meets at Microsoft, Google, Yandex or a company Keycloak, with the
rules of the RFCs enforced, so that a client that cuts a corner fails here too:

* ``GET /authorize``: the authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636,
  ``S256`` only, mandatory) and loopback redirects on any port (RFC 8252 §7.3). The "browser"
  is :meth:`OAuthServer.browser_visit`: it plays a signed-in user who allows or denies;
* ``POST /device``: device authorization (RFC 8628), with ``authorization_pending``,
  ``slow_down`` (a poll earlier than the interval asks for), ``access_denied`` and
  ``expired_token`` answers; the user's side is :meth:`OAuthServer.approve_device`;
* ``POST /token``: the three grants, refresh tokens **rotated** on every use; presenting a
  rotated refresh token again revokes the whole grant (reuse detection, as real providers do);
* ``POST /introspect`` (RFC 7662) for Dovecot's ``oauth2`` passdb, guarded by HTTP basic
  auth of the resource server; ``POST /revoke`` (RFC 7009).

Access tokens are short-lived and shaped like JWTs (``header.claims.signature``, ~1.5 KB like
Microsoft's), but they are also looked up in the server's table, so revoking or expiring one
takes effect at once. The server has its own clock (:meth:`OAuthServer.advance`), so a test
lets time pass without waiting: a client's fake ``sleep`` advances it.

One listener speaks plain HTTP (Dovecot's introspection), one HTTPS with the test PKI
(eddymail, which verifies the certificate with ``--ca-file``). Both serve every endpoint.
Everything is in memory and per :class:`OAuthClient`, so tests sharing the session's server
do not see each other's knobs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlencode, urlsplit

from tests.harness.certs import TestPKI

__all__ = ["OAuthClient", "OAuthServer", "start_oauth_server"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# HTTP basic auth login of the resource server at /introspect (password: resource_secret).
RESOURCE_LOGIN = "dovecot"
SLOW_DOWN_STEP = 5  # seconds, RFC 8628 §3.5


@dataclass
class OAuthClient:
    """A client registration (what a user creates in the provider's console) and its knobs."""

    client_id: str
    client_secret: str | None = None  # None: a public client (no secret, PKCE protects it)
    scopes: frozenset[str] = frozenset({"mail", "smtp", "profile", "offline_access"})
    access_lifetime: int = 600
    device_interval: int = 5
    device_lifetime: int = 900
    verification_field: str = "verification_uri"  # Google and Yandex say verification_url
    slow_down_polls: int = 0  # answer the next N polls with slow_down whatever their timing
    issue_refresh_tokens: bool = True
    token_errors: list[tuple[int, dict[str, Any] | str]] = field(default_factory=list)
    """Queued answers for the next token requests: (HTTP status, JSON object or raw text)."""
    refresh_gate: threading.Event | None = None
    """When set, a refresh request waits for this event before it is answered."""


@dataclass
class _Grant:
    """What a user allowed a client: one family of rotated refresh and access tokens."""

    client_id: str
    user: str
    scope: str
    revoked: bool = False


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    challenge: str
    expires_at: float
    used: bool = False


@dataclass
class _Device:
    client_id: str
    scope: str
    user_code: str
    expires_at: float
    interval: int
    last_poll: float | None = None
    decision: str = "pending"  # pending | allowed | denied
    user: str = ""
    redeemed: bool = False


@dataclass
class _Token:
    grant: _Grant
    expires_at: float | None = None  # access tokens only
    rotated: bool = False  # refresh tokens only


class OAuthServer:
    """The running authorization server; made by :func:`start_oauth_server`."""

    host = "127.0.0.1"

    def __init__(self, pki: TestPKI) -> None:
        self.pki = pki
        self.resource_secret = secrets.token_urlsafe(12)
        self.requests: Counter[str] = Counter()
        """How many requests each endpoint (``token:refresh_token``, ``device``...) received."""
        self._offset = 0.0
        self._lock = threading.RLock()
        self._key = secrets.token_bytes(32)
        self._clients: dict[str, OAuthClient] = {}
        self._codes: dict[str, _Code] = {}
        self._devices: dict[str, _Device] = {}
        self._refresh: dict[str, _Token] = {}
        self._access: dict[str, _Token] = {}
        self._servers: list[ThreadingHTTPServer] = []
        self.http_port = 0
        self.https_port = 0

    # -- lifecycle and addresses ------------------------------------------------------------

    def start(self) -> None:
        """Listen on two free loopback ports (HTTP and HTTPS), each served by a thread."""
        for tls in (False, True):
            server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
            server.daemon_threads = True
            if tls:
                server.socket = self.pki.server_context().wrap_socket(
                    server.socket, server_side=True)
            thread = threading.Thread(target=server.serve_forever, name="oauth-test-server",
                                      daemon=True)
            thread.start()
            self._servers.append(server)
        self.http_port = self._servers[0].server_address[1]
        self.https_port = self._servers[1].server_address[1]

    def stop(self) -> None:
        """Stop both listeners."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        """The HTTPS base URL, e.g. ``https://127.0.0.1:4567``."""
        return f"https://{self.host}:{self.https_port}"

    @property
    def http_url(self) -> str:
        """The plain-HTTP base URL (what Dovecot's introspection uses)."""
        return f"http://{self.host}:{self.http_port}"

    def endpoint(self, name: str) -> str:
        """``authorize``, ``token``, ``device``, ``revoke``... as an HTTPS URL."""
        return f"{self.url}/{name}"

    @property
    def introspection_url(self) -> str:
        """The introspection URL with the resource server's basic-auth credentials in it."""
        return (f"http://{RESOURCE_LOGIN}:{self.resource_secret}@{self.host}:{self.http_port}"
                "/introspect")

    # -- the clock --------------------------------------------------------------------------

    def now(self) -> float:
        """The server's time: the real one plus what :meth:`advance` added."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the server (token and device-code expiry, poll timing)."""
        with self._lock:
            self._offset += seconds

    # -- registrations and the user's side ----------------------------------------------------

    def register_client(self, *, confidential: bool = False, **knobs: Any) -> OAuthClient:
        """A new client registration; ``confidential`` gives it a client secret."""
        client = OAuthClient(
            client_id=f"client-{secrets.token_hex(6)}",
            client_secret=secrets.token_urlsafe(16) if confidential else None,
            **knobs,
        )
        with self._lock:
            self._clients[client.client_id] = client
        return client

    def browser_visit(self, authorize_url: str, user: str, *, allow: bool = True) -> str:
        """Play a signed-in user's browser at the authorization URL; return where it is sent.

        The answer is the ``Location`` of the redirect (``http://127.0.0.1:PORT/...?code=...``
        or ``...?error=access_denied``), which a user on a headless server pastes back.
        """
        parts = urlsplit(authorize_url)
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, context=self.pki.client_context(), timeout=10)
        try:
            cookie = f"user={quote(user)}; consent={'allow' if allow else 'deny'}"
            connection.request("GET", f"{parts.path}?{parts.query}", headers={"Cookie": cookie})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != 302:
            raise AssertionError(f"the authorization page answered {response.status}, "
                                 "not a redirect")
        return response.getheader("Location") or ""

    def pending_user_codes(self) -> list[str]:
        """User codes of device authorizations nobody decided on yet (what a user would type)."""
        with self._lock:
            return [d.user_code for d in self._devices.values() if d.decision == "pending"]

    def approve_device(self, user_code: str, user: str, *, allow: bool = True) -> None:
        """The user types ``user_code`` on the verification page and allows (or denies)."""
        with self._lock:
            for device in self._devices.values():
                if device.user_code == user_code.upper() and device.decision == "pending":
                    device.decision = "allowed" if allow else "denied"
                    device.user = user
                    return
        raise AssertionError(f"no pending device authorization with code {user_code}")

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops being valid (a short lifetime ran out)."""
        with self._lock:
            for token in self._access.values():
                token.expires_at = self.now() - 1

    def revoke_user(self, user: str) -> None:
        """Revoke every grant of ``user`` (the user or an administrator withdrew access)."""
        with self._lock:
            for token in [*self._refresh.values(), *self._access.values()]:
                if token.grant.user == user:
                    token.grant.revoked = True

    def refresh_token_is_current(self, refresh_token: str) -> bool:
        """Whether ``refresh_token`` would be accepted now (issued, not rotated, not revoked)."""
        with self._lock:
            token = self._refresh.get(refresh_token)
            return token is not None and not token.rotated and not token.grant.revoked

    def issued_secrets(self) -> list[str]:
        """Every token, code and client secret this server ever handed out (for leak tests)."""
        with self._lock:
            return [*self._access, *self._refresh, *self._codes, *self._devices,
                    *(c.client_secret for c in self._clients.values() if c.client_secret)]

    def introspect(self, access_token: str) -> dict[str, Any]:
        """The RFC 7662 answer for ``access_token`` (also used by the test SMTP server)."""
        with self._lock:
            token = self._access.get(access_token)
            if (token is None or token.grant.revoked or token.expires_at is None
                    or token.expires_at <= self.now()):
                return {"active": False}
            return {"active": True, "username": token.grant.user, "scope": token.grant.scope,
                    "client_id": token.grant.client_id, "token_type": "Bearer",
                    "exp": int(token.expires_at)}

    # -- endpoints ----------------------------------------------------------------------------

    def _authorize(self, query: dict[str, str], user: str,
                   allow: bool) -> tuple[int, dict[str, str], bytes]:
        self.requests["authorize"] += 1
        client = self._clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None or not _loopback_redirect(redirect_uri):
            # Never redirect to an address the client did not prove it owns (RFC 6749 §4.1.2.1).
            return 400, {}, b"unknown client or redirect URI"

        def back(**params: str) -> tuple[int, dict[str, str], bytes]:
            if "state" in query:
                params["state"] = query["state"]
            separator = "&" if "?" in redirect_uri else "?"
            return 302, {"Location": redirect_uri + separator + urlencode(params)}, b""

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if query.get("code_challenge_method") != "S256" or len(query.get("code_challenge",
                                                                           "")) != 43:
            return back(error="invalid_request", error_description="PKCE S256 is required")
        scope = query.get("scope", "")
        if not set(scope.split()) <= client.scopes:
            return back(error="invalid_scope", error_description=f"scope not allowed: {scope}")
        if not allow:
            return back(error="access_denied", error_description="The user declined.")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(_Grant(client.client_id, user, scope), redirect_uri,
                                      query["code_challenge"], self.now() + 120)
        return back(code=code)

    def _device(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests["device"] += 1
        client = self._clients.get(form.get("client_id", ""))
        if client is None:
            return 401, {"error": "invalid_client"}
        scope = form.get("scope", "")
        if not set(scope.split()) <= client.scopes:
            return 400, {"error": "invalid_scope", "error_description": f"not allowed: {scope}"}
        device_code = secrets.token_urlsafe(32)
        user_code = "-".join(secrets.token_hex(2).upper() for _ in range(2))
        with self._lock:
            self._devices[device_code] = _Device(client.client_id, scope, user_code,
                                                 self.now() + client.device_lifetime,
                                                 client.device_interval)
        return 200, {
            "device_code": device_code, "user_code": user_code,
            client.verification_field: f"{self.url}/device/verify",
            "verification_uri_complete": f"{self.url}/device/verify?user_code={user_code}",
            "expires_in": client.device_lifetime, "interval": client.device_interval,
        }

    def _token(self, form: dict[str, str],
               authorization: str | None) -> tuple[int, dict[str, Any] | str]:
        grant_type = form.get("grant_type", "")
        short = "device_code" if grant_type == DEVICE_GRANT else grant_type
        self.requests[f"token:{short}"] += 1
        client, failure = self._authenticate_client(form, authorization)
        if client is None:
            return failure
        if client.token_errors:
            return client.token_errors.pop(0)
        if grant_type == "authorization_code":
            return self._redeem_code(client, form)
        if grant_type == "refresh_token":
            if client.refresh_gate is not None:
                client.refresh_gate.wait(30)
            return self._rotate(client, form)
        if grant_type == DEVICE_GRANT:
            return self._poll(client, form)
        return 400, {"error": "unsupported_grant_type"}

    def _authenticate_client(self, form: dict[str, str], authorization: str | None
                             ) -> tuple[OAuthClient | None, tuple[int, dict[str, Any]]]:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        client = self._clients.get(client_id)
        refused = (401, {"error": "invalid_client", "error_description": "client "
                         "authentication failed"})
        if client is None:
            return None, refused
        if client.client_secret is not None and not (
                secret and hmac.compare_digest(secret, client.client_secret)):
            return None, refused
        return client, (200, {})

    def _redeem_code(self, client: OAuthClient,
                     form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            code = self._codes.get(form.get("code", ""))
            if code is None or code.grant.client_id != client.client_id:
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            if code.used:
                code.grant.revoked = True  # RFC 6749 §4.1.2: revoke what the code gave
                return 400, {"error": "invalid_grant", "error_description": "code reused"}
            code.used = True
            if code.expires_at <= self.now():
                return 400, {"error": "invalid_grant", "error_description": "code expired"}
            if form.get("redirect_uri") != code.redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if digest.rstrip(b"=").decode() != code.challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE failed"}
            return 200, self._issue(client, code.grant)

    def _rotate(self, client: OAuthClient, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            token = self._refresh.get(form.get("refresh_token", ""))
            if token is None or token.grant.client_id != client.client_id:
                return 400, {"error": "invalid_grant", "error_description": "unknown token"}
            if token.rotated:
                token.grant.revoked = True  # a stolen copy is being replayed: end the grant
                return 400, {"error": "invalid_grant",
                             "error_description": "refresh token reused; grant revoked"}
            if token.grant.revoked:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            token.rotated = True
            return 200, self._issue(client, token.grant)

    def _poll(self, client: OAuthClient, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            device = self._devices.get(form.get("device_code", ""))
            if device is None or device.client_id != client.client_id or device.redeemed:
                return 400, {"error": "invalid_grant"}
            now = self.now()
            if device.expires_at <= now:
                return 400, {"error": "expired_token"}
            early = device.last_poll is not None and now < device.last_poll + device.interval
            device.last_poll = now
            if early or client.slow_down_polls > 0:
                client.slow_down_polls = max(0, client.slow_down_polls - 1)
                device.interval += SLOW_DOWN_STEP
                return 400, {"error": "slow_down"}
            if device.decision == "pending":
                return 400, {"error": "authorization_pending"}
            if device.decision == "denied":
                return 400, {"error": "access_denied",
                             "error_description": "The user declined."}
            device.redeemed = True
            return 200, self._issue(client, _Grant(client.client_id, device.user, device.scope))

    def _issue(self, client: OAuthClient, grant: _Grant) -> dict[str, Any]:
        access = self._access_token(grant)
        self._access[access] = _Token(grant, expires_at=self.now() + client.access_lifetime)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": client.access_lifetime, "scope": grant.scope}
        if client.issue_refresh_tokens and "offline_access" in grant.scope.split():
            refresh = secrets.token_urlsafe(48)
            self._refresh[refresh] = _Token(grant)
            answer["refresh_token"] = refresh
        return answer

    def _access_token(self, grant: _Grant) -> str:
        def part(value: dict[str, Any]) -> str:
            raw = json.dumps(value, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        claims = {"sub": grant.user, "scp": grant.scope, "jti": secrets.token_hex(8),
                  "iat": int(self.now()), "aud": "mail",
                  # Real tokens (Microsoft's) run to ~2 KB; so must the SASL strings here.
                  "xms": secrets.token_urlsafe(900)}
        body = part({"alg": "HS256", "typ": "JWT"}) + "." + part(claims)
        signature = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return body + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()

    def _introspect(self, form: dict[str, str],
                    authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests["introspect"] += 1
        expected = "Basic " + base64.b64encode(
            f"{RESOURCE_LOGIN}:{self.resource_secret}".encode()).decode()
        if not authorization or not hmac.compare_digest(authorization, expected):
            return 401, {"error": "invalid_client"}
        return 200, self.introspect(form.get("token", ""))

    def _revoke(self, form: dict[str, str],
                authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests["revoke"] += 1
        client, failure = self._authenticate_client(form, authorization)
        if client is None:
            return failure
        with self._lock:
            token = self._refresh.get(form.get("token", "")) or self._access.get(
                form.get("token", ""))
            if token is not None and token.grant.client_id == client.client_id:
                token.grant.revoked = True
        return 200, {}


def _handler_for(server: OAuthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            cookies = SimpleCookie(self.headers.get("Cookie", ""))
            if path == "/authorize" and "user" in cookies:
                allow = cookies["consent"].value == "allow" if "consent" in cookies else False
                status, headers, body = server._authorize(
                    _query(query), unquote(cookies["user"].value), allow)
                self._send(status, body, "text/plain", headers)
            elif path in ("/authorize", "/device/verify"):
                # A browser nobody signed in with: the tests sign in with browser_visit().
                self._send(200, b"<html>Sign in to continue</html>", "text/html")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = _query(self.rfile.read(length).decode())
            authorization = self.headers.get("Authorization")
            path = self.path.partition("?")[0]
            answer: tuple[int, dict[str, Any] | str]
            if path == "/token":
                answer = server._token(form, authorization)
            elif path == "/device":
                answer = server._device(form)
            elif path == "/introspect":
                answer = server._introspect(form, authorization)
            elif path == "/revoke":
                answer = server._revoke(form, authorization)
            else:
                answer = (404, {"error": "not_found"})
            status, body = answer
            if isinstance(body, str):
                self._send(status, body.encode(), "text/html")
            else:
                self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str,
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: pytest shows what matters

    return Handler


def _query(text: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _loopback_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def start_oauth_server(pki: TestPKI) -> OAuthServer:
    """Create an :class:`OAuthServer` and start its listeners."""
    server = OAuthServer(pki)
    server.start()
    return server
