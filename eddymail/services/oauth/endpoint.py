"""Talking to an authorization server, through authlib's OAuth 2.0 client.

authlib builds the requests (client authentication, PKCE, the grants) and reads the answers;
this module adds what eddymail needs around it: eddymail's own TLS context (system trust
store plus ``--ca-file``, verified always), the network timeout, the provider's quirks
(``verification_url``, Yandex's device grant) and errors that say what to do. authlib and
requests are imported on first use only: ``eddymail --version`` and every password channel
never load them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from eddymail import secrets
from eddymail.errors import OAuthError
from eddymail.mail.wire.tls import make_ssl_context
from eddymail.services.oauth import diagnosis
from eddymail.services.oauth.settings import OAuthSettings

#: A device poll that says "not yet" (RFC 8628 §3.5).
PENDING, SLOW_DOWN = "authorization_pending", "slow_down"


@dataclass(frozen=True)
class TokenSet:
    """What a token endpoint granted. ``expires_at`` is a ``time.time()`` value."""

    access_token: str
    refresh_token: str | None
    expires_at: float | None
    scope: str

    def to_json(self) -> str:
        """The form kept in the keyring (one entry, written at once)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> TokenSet | None:
        """The stored form read back; None for nothing or something unreadable."""
        try:
            data = json.loads(text or "")
            return cls(access_token=str(data.get("access_token") or ""),
                       refresh_token=data.get("refresh_token") or None,
                       expires_at=_number(data.get("expires_at")),
                       scope=str(data.get("scope") or ""))
        except (ValueError, AttributeError, TypeError):
            return None

    def __repr__(self) -> str:
        return f"TokenSet(expires_at={self.expires_at!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class DeviceAuthorization:
    """A device authorization (RFC 8628 §3.2): what to show the user, what to poll with."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float

    def __repr__(self) -> str:
        return f"DeviceAuthorization(user_code={self.user_code!r})"


class DevicePending(Exception):
    """The user has not finished yet; ``slow_down`` asks for a longer poll interval."""

    def __init__(self, slow_down: bool) -> None:
        super().__init__(SLOW_DOWN if slow_down else PENDING)
        self.slow_down = slow_down


class TokenEndpoint:
    """One authorization server, for one channel's client registration."""

    def __init__(self, settings: OAuthSettings, client_secret: str | None, *,
                 timeout: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.timeout = timeout
        self.clock = clock
        self._client_secret = client_secret

    def authorization_url(self, redirect_uri: str, state: str, verifier: str) -> str:
        """The URL the user opens for the code flow, with a PKCE S256 challenge."""
        with self._session("oauth authorize", redirect_uri=redirect_uri,
                           code_challenge_method="S256") as session:
            url, _state = session.create_authorization_url(
                self.settings.authorize_url, state=state, code_verifier=verifier,
                **dict(self.settings.authorize_params))
        return str(url)

    def exchange_code(self, code: str, redirect_uri: str, verifier: str) -> TokenSet:
        """Trade an authorization code (and the PKCE verifier) for tokens."""
        with self._session("oauth authorize", (code, verifier),
                           redirect_uri=redirect_uri) as session:
            answer = session.fetch_token(self.settings.token_url, grant_type="authorization_code",
                                         code=code, code_verifier=verifier,
                                         timeout=self.timeout)
        return self._tokens(answer, "oauth authorize")

    def refresh(self, refresh_token: str) -> TokenSet:
        """New tokens for a refresh token; a rotated refresh token comes back in them."""
        with self._session("oauth refresh", (refresh_token,)) as session:
            answer = session.refresh_token(self.settings.token_url, refresh_token=refresh_token,
                                           timeout=self.timeout)
        tokens = self._tokens(answer, "oauth refresh")
        if tokens.refresh_token is None:  # not rotated: the old one stays good
            tokens = TokenSet(tokens.access_token, refresh_token, tokens.expires_at,
                              tokens.scope)
        return tokens

    def start_device(self) -> DeviceAuthorization:
        """Ask for a device code and a user code (RFC 8628 §3.1)."""
        # The client id in the body and no client authentication: what Microsoft, Google,
        # Yandex and RFC 8628 §3.1 all take (the secret, if any, goes with the polls).
        data: dict[str, str] = {"client_id": self.settings.client_id}
        if self.settings.scopes:
            data["scope"] = " ".join(self.settings.scopes)
        with self._session("oauth device") as session:
            response = session.post(self.settings.device_url, data=data, withhold_token=True,
                                    timeout=self.timeout)
            answer = self._json(response, "oauth device")
        # Google and Yandex say verification_url, RFC 8628 verification_uri.
        uri = answer.get("verification_uri") or answer.get("verification_url")
        if not answer.get("device_code") or not answer.get("user_code") or not uri:
            raise diagnosis.unreachable(self.settings, "oauth device",
                                        "the answer has no device_code, user_code or "
                                        "verification URI", garbled=True)
        return DeviceAuthorization(
            device_code=str(answer["device_code"]), user_code=str(answer["user_code"]),
            verification_uri=str(uri),
            verification_uri_complete=answer.get("verification_uri_complete") or None,
            expires_in=_number(answer.get("expires_in")) or 900.0,
            interval=_number(answer.get("interval")) or 5.0,
        )

    def poll_device(self, device_code: str) -> TokenSet:
        """One poll; raises ``DevicePending`` while the user has not finished."""
        grant_type, parameter = self.settings.device_grant
        # No scope with the polls: the device authorization already named it.
        with self._session("oauth device", (device_code,), with_scope=False) as session:
            answer = session.fetch_token(self.settings.token_url, grant_type=grant_type,
                                         timeout=self.timeout, **{parameter: device_code})
        return self._tokens(answer, "oauth device")

    def revoke(self, token: str) -> None:
        """Revoke ``token`` (RFC 7009), when the provider has a revocation endpoint."""
        if not self.settings.revoke_url:
            return
        with self._session("oauth revoke", (token,)) as session:
            response = session.revoke_token(self.settings.revoke_url, token=token,
                                            timeout=self.timeout)
            if response.status_code >= 400:
                self._json(response, "oauth revoke")

    # -- the session and its errors -----------------------------------------------------------

    @contextmanager
    def _session(self, operation: str, sent: Iterable[str] = (), *, with_scope: bool = True,
                 **options: Any) -> Iterator[Any]:
        """An authlib session over eddymail's TLS context; every failure becomes an
        ``OAuthError`` that says what to do (or ``DevicePending`` for a device poll).

        The client secret and the ``sent`` secrets (a refresh token, a code) are in use
        (``secrets.in_use``) meanwhile: scrubbed from whatever a failure reports.
        """
        # Imported here: costly, and needed only when a token is.
        import requests
        from authlib.integrations.base_client import OAuthError as AuthlibError
        from authlib.integrations.requests_client import OAuth2Session

        scope = " ".join(self.settings.scopes) if with_scope else ""
        session = OAuth2Session(client_id=self.settings.client_id,
                                client_secret=self._client_secret, scope=scope or None,
                                **options)
        adapter = _verified_adapter(make_ssl_context(self.settings.ca_file))
        session.mount("https://", adapter)
        try:
            with ExitStack() as in_use:
                for secret in (self._client_secret or "", *sent):
                    in_use.enter_context(secrets.in_use(secret))
                yield session
        except AuthlibError as error:
            code = str(error.error or "")
            if operation == "oauth device" and code in (PENDING, SLOW_DOWN):
                raise DevicePending(code == SLOW_DOWN) from None
            raise diagnosis.refusal(self.settings, operation, code,
                                    str(error.description or "")) from None
        except requests.exceptions.SSLError as error:
            raise diagnosis.unreachable(self.settings, operation, _reason(error),
                                        tls=True) from None
        except requests.exceptions.HTTPError as error:
            status = error.response.status_code if error.response is not None else "?"
            raise diagnosis.unreachable(self.settings, operation,
                                        f"HTTP {status} without an OAuth answer") from None
        except requests.exceptions.InvalidURL as error:
            raise diagnosis.unreachable(self.settings, operation, _reason(error)) from None
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            # Not JSON, or JSON authlib cannot read: older authlib releases index a JSON list
            # or string as if it were an object (TypeError) rather than refusing it.
            raise diagnosis.unreachable(self.settings, operation, _reason(error),
                                        garbled=True) from None
        except requests.exceptions.RequestException as error:
            raise diagnosis.unreachable(self.settings, operation, _reason(error)) from None
        finally:
            session.close()

    def _json(self, response: Any, operation: str) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise diagnosis.unreachable(self.settings, operation,
                                        f"HTTP {response.status_code}, not a JSON object",
                                        garbled=True)
        if "error" in answer:
            raise diagnosis.refusal(self.settings, operation, str(answer["error"]),
                                    str(answer.get("error_description") or ""))
        if response.status_code >= 400:
            raise diagnosis.unreachable(self.settings, operation,
                                        f"HTTP {response.status_code}")
        return answer

    def _tokens(self, answer: dict[str, Any], operation: str) -> TokenSet:
        access = answer.get("access_token")
        if not access or not isinstance(access, str):
            raise OAuthError(f"{self.settings.provider} granted no access token.",
                             operation=operation, answer="no access_token in the answer")
        refresh = answer.get("refresh_token") or None
        lifetime = _number(answer.get("expires_in"))
        return TokenSet(
            access_token=access, refresh_token=str(refresh) if refresh else None,
            expires_at=self.clock() + lifetime if lifetime is not None else None,
            # No scope in the answer means the scope asked for (RFC 6749 §5.1).
            scope=str(answer.get("scope") or " ".join(self.settings.scopes)),
        )


def _verified_adapter(context: Any) -> Any:
    """A requests transport adapter that verifies with ``context`` and nothing else.

    requests would otherwise verify against certifi's bundle and load it into the context;
    eddymail verifies every TLS connection the same way: the system trust store plus the
    channel's ``--ca-file``, host names checked.
    """
    from requests.adapters import HTTPAdapter

    class VerifiedAdapter(HTTPAdapter):
        def build_connection_pool_key_attributes(self, request: Any, verify: Any,
                                                 cert: Any = None) -> Any:
            host, attributes = super().build_connection_pool_key_attributes(request, True, cert)
            pool: dict[str, Any] = dict(attributes)
            for key in ("ca_certs", "ca_cert_dir"):
                pool.pop(key, None)
            pool.update(ssl_context=context, cert_reqs="CERT_REQUIRED")
            return host, pool

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = conn.ca_cert_dir = None

    return VerifiedAdapter(max_retries=0)


def _reason(error: Exception) -> str:
    """The innermost reason of a requests failure, short (no URL with a code in it)."""
    reason: BaseException = error
    while reason.__context__ is not None and len(str(reason.__context__)) < len(str(reason)):
        reason = reason.__context__
    text = str(getattr(reason, "reason", None) or reason)
    return text.split("(Caused by ")[-1].rstrip(")")[:300]


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None
