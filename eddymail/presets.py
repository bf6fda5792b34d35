"""Server settings of popular mail providers, and what their users must know.

A preset fills the incoming (IMAP or POP3) and outgoing (SMTP) servers, so only the address
and the password remain to be typed. Each carries the hint a user needs when login fails:
whether the provider wants an *app password* (Gmail, Yandex, ...) and where IMAP/POP access
is switched on. Facts are from the providers' own help pages; keep them short and exact.

Providers that sign mail programs in with OAuth 2.0 carry an :class:`OAuthProvider`: their
endpoints, the scopes each protocol needs, the SASL mechanisms their servers take, which
flow works for mail scopes, and how a user registers the app whose client id eddymail uses
(eddymail ships no client id or secret of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eddymail.errors import NotFoundError

#: The standard device grant (RFC 8628 §3.4).
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class Server:
    """One server endpoint: host, port and how the connection is secured."""

    host: str
    port: int
    security: str  # ssl | starttls | none


@dataclass(frozen=True)
class OAuthProvider:
    """How a provider signs mail programs in with OAuth 2.0.

    URLs may hold ``{tenant}`` (Microsoft's directory: ``common``, ``organizations``, a
    domain or a tenant id). ``scopes`` names the scopes per protocol (``imap``, ``pop3``,
    ``smtp``); a protocol missing there cannot use OAuth at this provider. ``base_scopes``
    are always asked for (``offline_access`` for a refresh token). ``mechanisms`` lists
    the SASL mechanisms in order of preference; ``flow`` is the one that works for mail
    scopes (``device`` or ``code``); ``client_secret`` says the provider's installed-app
    registrations come with a secret its token endpoint wants. ``device_grant`` is the
    grant type and the name of the parameter that carry the device code when polling.
    ``redirect_host`` is the loopback name in the code flow's redirect URI, as the provider
    wants it registered (the listener is on 127.0.0.1 either way).
    """

    authorize_url: str
    token_url: str
    device_url: str | None
    revoke_url: str | None
    scopes: dict[str, tuple[str, ...]]
    mechanisms: tuple[str, ...]
    flow: str
    registration: str
    base_scopes: tuple[str, ...] = ()
    client_secret: bool = False
    authorize_params: tuple[tuple[str, str], ...] = ()
    tenant: str | None = None
    device_grant: tuple[str, str] = (DEVICE_GRANT, "device_code")
    consent_hint: str = ""
    redirect_host: str = "127.0.0.1"

    def supports(self, protocol: str) -> bool:
        """Whether ``imap``, ``pop3`` or ``smtp`` can sign in with OAuth at this provider."""
        return protocol in self.scopes


@dataclass(frozen=True)
class Preset:
    """A mail provider's servers and the advice its users need."""

    key: str
    name: str
    domains: tuple[str, ...]
    imap: Server | None
    pop3: Server | None
    smtp: Server
    app_password: bool
    access_setting: str
    hint: str
    authserv_id: str = ""
    oauth: OAuthProvider | None = field(default=None, repr=False)

    def incoming(self, protocol: str) -> Server | None:
        """The incoming server for ``imap`` or ``pop3`` (None when the provider has none)."""
        return {"imap": self.imap, "pop3": self.pop3}.get(protocol)


PRESETS: tuple[Preset, ...] = (
    Preset(
        key="gmail",
        name="Gmail",
        domains=("gmail.com", "googlemail.com"),
        imap=Server("imap.gmail.com", 993, "ssl"),
        pop3=Server("pop.gmail.com", 995, "ssl"),
        smtp=Server("smtp.gmail.com", 465, "ssl"),
        app_password=True,
        access_setting="Gmail: Settings → See all settings → Forwarding and POP/IMAP → "
        "enable IMAP (or POP)",
        hint="Gmail needs an app password: turn on 2-Step Verification in your Google "
        "account, then create an app password and use it here (not your Google password). "
        "IMAP or POP access must be enabled in Gmail's settings. Google Workspace accounts "
        "whose administrators allow no app passwords sign in with --auth oauth2.",
        authserv_id="mx.google.com",
        oauth=OAuthProvider(
            authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 (a URL, not a secret)
            # Google's device flow does not grant the mail scope: the code flow it is.
            device_url=None,
            revoke_url="https://oauth2.googleapis.com/revoke",
            scopes={protocol: ("https://mail.google.com/",)
                    for protocol in ("imap", "pop3", "smtp")},
            mechanisms=("XOAUTH2", "OAUTHBEARER"),
            flow="code",
            client_secret=True,
            # A refresh token is only given with offline access, and again only on consent.
            authorize_params=(("access_type", "offline"), ("prompt", "consent")),
            registration="Google Cloud console: create a project, enable the Gmail API, set "
            "up the OAuth consent screen (Internal for Workspace, or add yourself as a test "
            "user), then Credentials → Create credentials → OAuth client ID → Desktop app; "
            "give eddymail its client id (--oauth-client-id) and its secret "
            "(--oauth-client-secret-stdin, kept in the keyring).",
            consent_hint="a Workspace administrator may have to allow the app "
            "(Admin console → Security → API controls → App access control)",
        ),
    ),
    Preset(
        key="yandex",
        name="Yandex Mail",
        domains=(
            "yandex.ru",
            "yandex.com",
            "ya.ru",
            "yandex.by",
            "yandex.kz",
            "yandex.ua",
            "narod.ru",
        ),
        imap=Server("imap.yandex.ru", 993, "ssl"),
        pop3=Server("pop.yandex.ru", 995, "ssl"),
        smtp=Server("smtp.yandex.ru", 465, "ssl"),
        app_password=True,
        access_setting="Yandex Mail: Settings → Email clients → allow access "
        "from the imap.yandex.ru server (or pop.yandex.ru)",
        hint="Yandex needs an app password: create one in Yandex ID → Security → App "
        "passwords (type: Mail) and use it here, not the mailbox password. Access for mail "
        "clients must be allowed in Yandex Mail's settings (Email clients). Or sign in with "
        "--auth oauth2 (IMAP and SMTP).",
        oauth=OAuthProvider(
            authorize_url="https://oauth.yandex.ru/authorize",
            token_url="https://oauth.yandex.ru/token",  # noqa: S106 (a URL, not a secret)
            device_url="https://oauth.yandex.ru/device/code",
            revoke_url=None,
            # No scope parameter: Yandex then grants what the app was registered with.
            # Yandex documents OAuth for IMAP and SMTP only.
            scopes={"imap": (), "smtp": ()},
            # Yandex's IMAP takes XOAUTH2 without announcing it in CAPABILITY.
            mechanisms=("XOAUTH2",),
            flow="device",
            client_secret=True,
            device_grant=("device_code", "code"),
            registration="Yandex OAuth (oauth.yandex.ru): Create app → for \"Web services\" "
            "add the Callback URL http://127.0.0.1 (code flow) and allow device codes; "
            "permissions: Yandex.Mail → IMAP access (read and delete) and sending mail over "
            "SMTP; give eddymail the ClientID (--oauth-client-id) and the Client secret "
            "(--oauth-client-secret-stdin, kept in the keyring).",
        ),
    ),
    Preset(
        key="mailru",
        name="Mail.ru",
        domains=("mail.ru", "inbox.ru", "list.ru", "bk.ru", "internet.ru", "mail.ua"),
        imap=Server("imap.mail.ru", 993, "ssl"),
        pop3=Server("pop.mail.ru", 995, "ssl"),
        smtp=Server("smtp.mail.ru", 465, "ssl"),
        app_password=True,
        access_setting="Mail.ru: Settings → Email programs → allow access by IMAP/POP3",
        hint="Mail.ru needs a password for external applications: create one in Account → "
        "Security → Passwords for external applications and use it here.",
    ),
    Preset(
        key="outlook",
        name="Outlook.com / Microsoft 365",
        domains=("outlook.com", "hotmail.com", "live.com", "msn.com", "outlook.ru"),
        imap=Server("outlook.office365.com", 993, "ssl"),
        pop3=Server("outlook.office365.com", 995, "ssl"),
        smtp=Server("smtp.office365.com", 587, "starttls"),
        app_password=True,
        access_setting="Outlook.com: Settings → Mail → Forwarding and IMAP → "
        "let devices and apps use POP/IMAP",
        hint="Outlook.com accepts an app password (with two-step verification) for IMAP/POP "
        "and SMTP. Microsoft 365 work accounts, where password (basic) authentication is "
        "switched off, sign in with --auth oauth2 (device code, or --flow code).",
        oauth=OAuthProvider(
            authorize_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
            token_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",  # noqa: S106 (a URL, not a secret)
            device_url="https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
            revoke_url=None,
            scopes={
                "imap": ("https://outlook.office.com/IMAP.AccessAsUser.All",),
                "pop3": ("https://outlook.office.com/POP.AccessAsUser.All",),
                "smtp": ("https://outlook.office.com/SMTP.Send",),
            },
            base_scopes=("offline_access",),
            mechanisms=("XOAUTH2",),
            flow="device",
            tenant="common",
            # Entra ID lets a desktop app registered with http://localhost use any port.
            redirect_host="localhost",
            registration="Microsoft Entra admin center → App registrations → New "
            "registration (accounts in this directory, or any directory and personal "
            "accounts); Authentication → add the platform \"Mobile and desktop applications\" "
            "with the redirect URI http://localhost and set \"Allow public client flows\" to "
            "Yes; API permissions → Add → APIs my organization uses → Office 365 Exchange "
            "Online → Delegated: IMAP.AccessAsUser.All, POP.AccessAsUser.All, SMTP.Send, "
            "plus offline_access; give eddymail the Application (client) id "
            "(--oauth-client-id) and, for work accounts, the tenant (--oauth-tenant).",
            consent_hint="an administrator must grant consent for the tenant (Entra admin "
            "center → App registrations → the app → API permissions → Grant admin consent), "
            "and IMAP, POP or SMTP AUTH must be enabled for the mailbox "
            "(Set-CASMailbox -ImapEnabled/-PopEnabled, Exchange admin center → Mail flow → "
            "Authenticated SMTP)",
        ),
    ),
    Preset(
        key="yahoo",
        name="Yahoo Mail",
        domains=("yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.de"),
        imap=Server("imap.mail.yahoo.com", 993, "ssl"),
        pop3=Server("pop.mail.yahoo.com", 995, "ssl"),
        smtp=Server("smtp.mail.yahoo.com", 465, "ssl"),
        app_password=True,
        access_setting="Yahoo: Account security → Generate app password",
        hint="Yahoo Mail needs an app password: Account security → Generate app password, "
        "then use it here.",
    ),
    Preset(
        key="icloud",
        name="iCloud Mail",
        domains=("icloud.com", "me.com", "mac.com"),
        imap=Server("imap.mail.me.com", 993, "ssl"),
        pop3=None,
        smtp=Server("smtp.mail.me.com", 587, "starttls"),
        app_password=True,
        access_setting="Apple Account: Sign-In and Security → App-Specific Passwords",
        hint="iCloud Mail needs an app-specific password (Apple Account → Sign-In and "
        "Security → App-Specific Passwords). iCloud offers IMAP only, no POP3.",
    ),
    Preset(
        key="rambler",
        name="Rambler Mail",
        domains=("rambler.ru", "lenta.ru", "autorambler.ru", "myrambler.ru", "ro.ru"),
        imap=Server("imap.rambler.ru", 993, "ssl"),
        pop3=Server("pop.rambler.ru", 995, "ssl"),
        smtp=Server("smtp.rambler.ru", 465, "ssl"),
        app_password=False,
        access_setting="Rambler Mail: Settings → Mail programs → allow access to the "
        "mailbox from mail programs",
        hint="Rambler Mail must allow access from mail programs (Settings → Mail programs).",
    ),
    Preset(
        key="zoho",
        name="Zoho Mail",
        domains=("zoho.com", "zohomail.com", "zoho.eu"),
        imap=Server("imap.zoho.com", 993, "ssl"),
        pop3=Server("pop.zoho.com", 995, "ssl"),
        smtp=Server("smtp.zoho.com", 465, "ssl"),
        app_password=False,
        access_setting="Zoho Mail: Settings → Mail Accounts → IMAP/POP Access",
        hint="Zoho Mail must have IMAP or POP access enabled (Settings → Mail Accounts). "
        "With two-factor authentication on, use an application-specific password.",
    ),
    Preset(
        key="fastmail",
        name="Fastmail",
        domains=("fastmail.com", "fastmail.fm"),
        imap=Server("imap.fastmail.com", 993, "ssl"),
        pop3=Server("pop.fastmail.com", 995, "ssl"),
        smtp=Server("smtp.fastmail.com", 465, "ssl"),
        app_password=True,
        access_setting="Fastmail: Settings → Privacy & Security → Manage app passwords",
        hint="Fastmail needs an app password (Settings → Privacy & Security → Manage app "
        "passwords) with IMAP/POP and SMTP access.",
    ),
)

_BY_KEY = {preset.key: preset for preset in PRESETS}


def get_preset(key: str) -> Preset:
    """The preset named ``key`` (``gmail``, ``yandex``, ...). Raises ``NotFoundError``."""
    try:
        return _BY_KEY[key.lower()]
    except KeyError:
        known = ", ".join(_BY_KEY)
        raise NotFoundError(f"Unknown preset '{key}'; known presets: {known}.") from None


def find_preset(key: str | None) -> Preset | None:
    """The preset named ``key``, or None when there is none (no error)."""
    return _BY_KEY.get(key.lower()) if key else None


def preset_for_address(address: str) -> Preset | None:
    """The preset whose provider hosts ``address``'s domain, if any."""
    domain = address.rpartition("@")[2].strip().lower()
    for preset in PRESETS:
        if domain in preset.domains:
            return preset
    return None
