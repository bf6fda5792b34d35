"""A refusal from an authorization server or a mail server, as a sentence that says what to do.

Token endpoints answer with an ``error`` code (RFC 6749 §5.2) and a description; Microsoft
puts an ``AADSTSnnnnn`` code in it that names the real cause (admin consent missing, app not
in the tenant, public client flows off). Mail servers refuse a bearer token with an error
challenge (``status``, ``scope``) or, at Microsoft, a reply such as ``5.7.139 ...
SmtpClientAuthentication is disabled``. Codes are matched loosely: a missed match costs the
hint only, never the server's own words.
"""

from __future__ import annotations

import re

from eddymail.errors import AuthorizationRequired, BearerRefused, OAuthError
from eddymail.services.oauth.settings import OAuthSettings

_AADSTS = re.compile(r"AADSTS(\d+)")
TEMPORARY = "temporary: the next run tries again"


def authorize_command(settings: OAuthSettings) -> str:
    """The command that gets new tokens for the channel."""
    return f"eddymail channel authorize {settings.channel}"


def refusal(settings: OAuthSettings, operation: str, error: str,
            description: str = "") -> OAuthError:
    """The error for an authorization server's ``error`` answer during ``operation``."""
    answer = f"{error}: {description}".strip().rstrip(":") if description else error
    where = f"{settings.provider} refused the {_what(operation)}"
    consent = settings.consent_hint or "an administrator must allow the app for the organisation"
    codes = set(_AADSTS.findall(description))
    reauthorize = f"run {authorize_command(settings)}"
    if codes & {"65001", "90094", "90008", "65004"} or "consent" in description.lower():
        return OAuthError(f"{where}: nobody consented to the app using the mailbox.",
                          operation=operation, answer=answer, hint=f"{consent}; then {reauthorize}")
    if codes & {"700016", "90002", "50059"}:
        return OAuthError(f"{where}: the app or the tenant is not known there.",
                          operation=operation, answer=answer,
                          hint="check --oauth-client-id (the Application (client) id) and "
                          "--oauth-tenant (the tenant's domain or id)")
    if codes & {"7000218", "700025"}:
        return OAuthError(f"{where}: the app is not set up as a public client.",
                          operation=operation, answer=answer,
                          hint="in the app registration set Authentication → Allow public "
                          "client flows to Yes (device code), or give eddymail the client "
                          "secret with --oauth-client-secret-stdin")
    if codes & {"50076", "50079", "50158"}:
        return AuthorizationRequired(
            f"{where}: the organisation wants a new sign-in (multi-factor authentication).",
            operation=operation, answer=answer, hint=reauthorize)
    if error == "invalid_scope" or codes & {"70011", "65005", "700054"}:
        asked = " ".join(settings.scopes) or "(none)"
        return OAuthError(f"{where}: the scopes asked for are not allowed.", operation=operation,
                          answer=answer, hint=f"asked for: {asked}; check --oauth-scope and the "
                          "API permissions of the app registration")
    if error in ("invalid_client", "unauthorized_client"):
        return OAuthError(f"{where}: the app registration does not accept this client id, "
                          "secret or flow.", operation=operation, answer=answer,
                          hint="check --oauth-client-id and the client secret "
                          "(--oauth-client-secret-stdin), and that the registration allows "
                          "this flow (device code, or a loopback redirect for --flow code)")
    if error == "invalid_grant" and operation == "oauth refresh":
        return AuthorizationRequired(
            f"{where}: the channel's sign-in was revoked or has expired.",
            operation=operation, answer=answer, hint=reauthorize)
    if error == "access_denied":
        return OAuthError(f"{where}: the sign-in was declined.", operation=operation,
                          answer=answer, hint=f"{reauthorize} and allow the access; "
                          f"if you did allow it, {consent}")
    if error == "expired_token":
        return OAuthError(f"{where}: the code expired before anyone signed in with it.",
                          operation=operation, answer=answer,
                          hint=f"{reauthorize} again and finish the sign-in within the time")
    if error in ("temporarily_unavailable", "server_error"):
        return OAuthError(f"{where}: the server is not available right now.",
                          operation=operation, answer=answer, hint=TEMPORARY)
    return OAuthError(f"{where}.", operation=operation, answer=answer,
                      hint=reauthorize if error == "invalid_grant" else None)


def unreachable(settings: OAuthSettings, operation: str, detail: str,
                tls: bool = False, garbled: bool = False) -> OAuthError:
    """The error for a token endpoint that could not be reached or (``garbled``) answered
    something that is no OAuth 2.0 answer (a proxy's or a maintenance page, say)."""
    hint = TEMPORARY
    if tls:
        hint = ("the certificate of the authorization server is not trusted: pass --ca-file "
                "with the CA that issued it")
    what = (f"answered the {_what(operation)} with something that is not an OAuth 2.0 answer"
            if garbled else f"could not be reached for the {_what(operation)}")
    error = OAuthError(f"{settings.provider} {what} ({settings.token_url}).",
                       operation=operation, answer=detail, hint=hint)
    error.tls = tls
    return error


def refused_token(settings: OAuthSettings, error: BearerRefused, protocol: str) -> BearerRefused:
    """``error`` (a mail server refused a fresh token) with the hint that fits it."""
    answer = error.answer
    upper = answer.upper()
    scopes = " ".join(settings.scopes) or "(none)"
    access = {"imap": "IMAP", "pop3": "POP", "smtp": "SMTP AUTH"}.get(protocol, protocol)
    if not error.announced:
        server = {"imap": "--host", "pop3": "--host", "smtp": "--smtp-host"}.get(protocol, "")
        hint = (f"this {protocol.upper()} server announces neither XOAUTH2 nor OAUTHBEARER, "
                f"and refused the token: it may not take OAuth 2.0 sign-in at all. Check the "
                f"server ({server}, and the port), or sign in with --auth password")
    elif "5.7.139" in answer or "SMTPCLIENTAUTHENTICATION IS DISABLED" in upper:
        hint = ("authenticated SMTP (SMTP AUTH) is switched off for this mailbox or the whole "
                "tenant: Exchange admin center → the mailbox → Manage email apps → Authenticated "
                "SMTP, or Set-TransportConfig -SmtpClientAuthenticationDisabled $false")
    elif error.status in ("insufficient_scope",) or (
            error.scope and not set(error.scope.split()) & set(settings.scopes)):
        hint = (f"the token does not carry the scope the server wants ({error.scope or '?'}; "
                f"asked for: {scopes}): fix --oauth-scope, then run "
                f"{authorize_command(settings)}")
    else:
        hint = (f"a fresh token was refused: check that {access} is enabled for the mailbox "
                f"(at Microsoft 365 per mailbox and per tenant), that the login is the "
                f"mailbox's address and that the scopes asked for ({scopes}) are the ones "
                f"the server wants (--oauth-scope); then run {authorize_command(settings)}")
    return BearerRefused(error.message, status=error.status, scope=error.scope,
                         operation=error.operation, answer=error.answer, hint=hint,
                         announced=error.announced)


def _what(operation: str) -> str:
    return {"oauth refresh": "token refresh", "oauth authorize": "sign-in",
            "oauth device": "device sign-in", "oauth revoke": "revocation"}.get(
        operation, "request")
