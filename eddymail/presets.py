"""Server settings of popular mail providers, and what their users must know.

A preset fills the incoming (IMAP or POP3) and outgoing (SMTP) servers, so only the address
and the password remain to be typed. Each carries the hint a user needs when login fails:
whether the provider wants an *app password* (Gmail, Yandex, ...) and where IMAP/POP access
is switched on. Facts are from the providers' own help pages; keep them short and exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from eddymail.errors import NotFoundError


@dataclass(frozen=True)
class Server:
    """One server endpoint: host, port and how the connection is secured."""

    host: str
    port: int
    security: str  # ssl | starttls | none


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
        "IMAP or POP access must be enabled in Gmail's settings.",
        authserv_id="mx.google.com",
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
        "clients must be allowed in Yandex Mail's settings (Email clients).",
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
        "and SMTP. Microsoft 365 work accounts whose administrators turned off password "
        "(basic) authentication need OAuth2, which eddymail does not support yet.",
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
