"""Reading ``eddymail.toml``: lookup, defaults, validation.

The tool only ever reads this file. Lookup order: an explicit path (``--config``), then
``$EDDYMAIL_CONFIG``, then ``eddymail.toml`` in the platform config directory. No file at
all is fine: every key has a default. ``$EDDYMAIL_DATABASE_URL`` overrides the database URL,
so a cron line or a CI job can point at another database without a file.

Every key is declared once in ``SCHEMA``; unknown keys and wrong types are rejected with a
message naming the key and the file, because a typo silently ignored is a setting silently
lost. ``[oauth.PROVIDER]`` tables (one per preset that signs in with OAuth 2.0) hold the
keys of ``OAUTH_KEYS``: the client registration a whole team shares.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eddymail.errors import ConfigError

APP_NAME = "eddymail"
CONFIG_ENV = "EDDYMAIL_CONFIG"
DATABASE_URL_ENV = "EDDYMAIL_DATABASE_URL"
AGENT_ENV = "EDDYMAIL_AGENT"


class Key(NamedTuple):
    """One configuration key: its type, default and a line of documentation."""

    type: type | tuple[type, ...]
    default: Any
    doc: str


# section -> key -> declaration. eddymail.toml.example documents the same keys; a test keeps
# the two in step.
SCHEMA: dict[str, dict[str, Key]] = {
    "database": {
        "url": Key(str, "", "Database URL; empty means a SQLite file in the data directory."),
        "busy_timeout": Key((int, float), 15, "Seconds to wait for another writer (SQLite)."),
    },
    "agent": {
        "name": Key(str, "", "Who you are: an agent's handle (or name); $EDDYMAIL_AGENT and "
                    "--as override it."),
    },
    "reply": {
        "max_attachment_bytes": Key(int, 25 * 1024 * 1024,
                                    "Largest total size of files attached to one reply."),
        "html": Key(bool, False, "Replies also carry an HTML part rendered from Markdown."),
    },
    "network": {
        "timeout": Key((int, float), 30, "Seconds allowed for each network step."),
    },
    "fetch": {
        "deadline": Key((int, float), 900, "Seconds one fetch run may take in all."),
        "batch_size": Key(int, 50, "Messages downloaded per IMAP FETCH command."),
        "max_message_bytes": Key(int, 50 * 1024 * 1024, "Larger messages are quarantined."),
        "jobs": Key(int, 16, "Channels fetched at the same time (measured: bench/README.md)."),
    },
    "watch": {
        "idle_seconds": Key((int, float), 1500, "Longest IMAP IDLE before it is re-issued "
                            "(at most 1740: servers may drop a client idle for 30 minutes)."),
        "poll_seconds": Key((int, float), 60, "How often POP3 and IDLE-less servers are asked."),
        "reload_seconds": Key((int, float), 10, "How often the channel list is read again."),
        "outbox_seconds": Key((int, float), 5, "How often the outbox is looked at."),
        "backoff_seconds": Key((int, float), 2, "First wait before connecting again after a "
                               "failure; it doubles with each further one."),
        "backoff_max_seconds": Key((int, float), 300, "Longest wait before connecting again."),
    },
    "logging": {
        "level": Key(str, "warning", "debug, info, warning or error."),
        "file": Key(str, "", "Also append log records to this file; empty means stderr only."),
    },
}

# [oauth.PROVIDER] -> key -> declaration: defaults for every channel of that provider.
OAUTH_SECTION = "oauth"
OAUTH_KEYS: dict[str, Key] = {
    "client_id": Key(str, "", "The client id of the app you registered at the provider."),
    "tenant": Key(str, "", "Microsoft 365: the tenant (domain or id); empty means common."),
}


@dataclass(frozen=True)
class Config:
    """The effective configuration: file values over defaults, environment over both."""

    path: Path | None
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    oauth: dict[str, dict[str, str]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        """Value of ``section.key`` (declared in ``SCHEMA``)."""
        return self.values[section][key]

    def oauth_default(self, provider: str | None, key: str) -> str:
        """``[oauth.PROVIDER] key`` (declared in ``OAUTH_KEYS``), or "" when not set."""
        return self.oauth.get(provider or "", {}).get(key, "")

    @property
    def database_url(self) -> str:
        """The database URL to open, with the environment override and the default applied."""
        url = os.environ.get(DATABASE_URL_ENV) or self.get("database", "url")
        return url or default_database_url()

    @property
    def agent_identity(self) -> tuple[str, str]:
        """Who acts, and where that was said: ``$EDDYMAIL_AGENT``, else ``[agent] name``.

        ("", "") when neither is set (``--as`` on the command line comes before both).
        Never the login name: "root" is nobody's name on a reply.
        """
        from_environment = os.environ.get(AGENT_ENV, "").strip()
        if from_environment:
            return from_environment, f"${AGENT_ENV}"
        name = self.get("agent", "name").strip()
        return (name, f"[agent] name in {self.path}") if name else ("", "")


def default_config_path() -> Path:
    """``eddymail.toml`` in the platform's per-user config directory."""
    return _user_directory("config") / "eddymail.toml"


def default_data_dir() -> Path:
    """The per-user data directory (the SQLite file and the fetch lock live here)."""
    return _user_directory("data")


# The XDG Base Directory variable of each per-user directory, and its default under $HOME.
_XDG = {"config": ("XDG_CONFIG_HOME", ".config"), "data": ("XDG_DATA_HOME", ".local/share")}


def _user_directory(kind: str) -> Path:
    """eddymail's per-user ``kind`` directory: "config" or "data".

    On Linux and the BSDs that is what the XDG Base Directory specification says (a variable
    holding an absolute path, else the default under $HOME), read here: platformdirs answers
    the same there, but its Unix module imports tempfile, shutil, random and the compression
    modules, several milliseconds of every ``ingest`` a mail server starts (issue 14). macOS,
    Windows and Android have their own conventions: platformdirs knows them.
    """
    if sys.platform in ("win32", "darwin", "android") or (
            os.environ.get("ANDROID_DATA") == "/data"
            and os.environ.get("ANDROID_ROOT") == "/system"):
        import platformdirs

        found = getattr(platformdirs, f"user_{kind}_dir")(APP_NAME)
        return Path(found)
    variable, default = _XDG[kind]
    base = os.environ.get(variable, "")
    if not os.path.isabs(base):  # unset, empty or relative: the specification ignores it
        base = os.path.join(os.path.expanduser("~"), default)
    return Path(base) / APP_NAME


def default_database_url() -> str:
    """A SQLite file in the data directory."""
    return f"sqlite:///{default_data_dir() / 'eddymail.db'}"


def find_config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path | None, bool]:
    """Return the config path to read and whether the user named it.

    A file the user named (option or environment) must exist; the platform default may not.
    """
    if explicit:
        return Path(explicit), True
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env), True
    path = default_config_path()
    return (path if path.exists() else None), False


def load_config(explicit: str | os.PathLike[str] | None = None) -> Config:
    """Find, read and validate the configuration. Raises ``ConfigError``."""
    path, named = find_config_path(explicit)
    raw: dict[str, Any] = {}
    if path is not None:
        import tomllib  # (here: a run without a configuration file does not load the parser)

        try:
            with path.open("rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            if named:
                raise ConfigError(f"Configuration file {path} does not exist.") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"Configuration file {path} is not valid TOML: {error}.") from None
        except OSError as error:
            raise ConfigError(f"Cannot read configuration file {path}: {error.strerror}.") from None
    oauth = raw.pop(OAUTH_SECTION, {})
    return Config(path=path, values=_validate(raw, path), oauth=_validate_oauth(oauth, path))


def _validate(raw: dict[str, Any], path: Path | None) -> dict[str, dict[str, Any]]:
    where = f"in {path}" if path else ""
    values = {
        section: {k: key.default for k, key in keys.items()} for section, keys in SCHEMA.items()
    }
    for section, table in raw.items():
        if section not in SCHEMA:
            known = ", ".join(f"[{name}]" for name in [*SCHEMA, "oauth.PROVIDER"])
            raise ConfigError(f"Unknown section [{section}] {where}; known sections: {known}.")
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] {where} must be a table of keys.")
        for name, value in table.items():
            declared = SCHEMA[section].get(name)
            if declared is None:
                known = ", ".join(SCHEMA[section])
                raise ConfigError(
                    f"Unknown key '{section}.{name}' {where}; keys of [{section}]: {known}."
                )
            # bool is an int in Python; a number key given `true` is still a mistake.
            wrong_bool = isinstance(value, bool) and declared.type is not bool
            if wrong_bool or not isinstance(value, declared.type):
                expected = _type_name(declared.type)
                raise ConfigError(
                    f"Key '{section}.{name}' {where} must be {expected}, "
                    f"not {_type_name(type(value))}."
                )
            values[section][name] = value
    _check_ranges(values, where)
    return values


def _validate_oauth(raw: Any, path: Path | None) -> dict[str, dict[str, str]]:
    if not raw:
        return {}
    # Here, not at the top: most configurations have no [oauth] tables, and start-up should
    # not pay for the provider data.
    from eddymail.presets import PRESETS

    where = f"in {path}" if path else ""
    providers = [preset.key for preset in PRESETS if preset.oauth is not None]
    if not isinstance(raw, dict):
        raise ConfigError(f"[{OAUTH_SECTION}] {where} must hold one table per provider, "
                          f"e.g. [oauth.{providers[0]}].")
    values: dict[str, dict[str, str]] = {}
    for provider, table in raw.items():
        if provider not in providers or not isinstance(table, dict):
            raise ConfigError(f"Unknown table [oauth.{provider}] {where}; providers that "
                              f"sign in with OAuth: {', '.join(providers)}.")
        for name, value in table.items():
            if name not in OAUTH_KEYS:
                raise ConfigError(f"Unknown key 'oauth.{provider}.{name}' {where}; keys: "
                                  f"{', '.join(OAUTH_KEYS)}.")
            if not isinstance(value, str):
                raise ConfigError(f"Key 'oauth.{provider}.{name}' {where} must be a string.")
        values[provider] = {name: value.strip() for name, value in table.items()}
    return values


def _check_ranges(values: dict[str, dict[str, Any]], where: str) -> None:
    positive = [
        ("database", "busy_timeout"),
        ("network", "timeout"),
        ("fetch", "deadline"),
        ("fetch", "batch_size"),
        ("fetch", "max_message_bytes"),
        ("reply", "max_attachment_bytes"),
        ("fetch", "jobs"),
        *(("watch", key) for key in SCHEMA["watch"]),
    ]
    for section, name in positive:
        if values[section][name] <= 0:
            raise ConfigError(f"Key '{section}.{name}' {where} must be greater than zero.")
    if values["watch"]["idle_seconds"] > 29 * 60:
        raise ConfigError(f"Key 'watch.idle_seconds' {where} must be at most 1740 (29 minutes, "
                          "RFC 2177).")
    level = values["logging"]["level"].lower()
    if level not in {"debug", "info", "warning", "error"}:
        raise ConfigError(
            f"Key 'logging.level' {where} must be one of debug, info, warning, error."
        )
    values["logging"]["level"] = level


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    if isinstance(kind, tuple):
        return "a number" if set(kind) == {int, float} else " or ".join(map(_type_name, kind))
    return names.get(kind, kind.__name__)
