"""0004_channel_oauth: a channel's sign-in method and its OAuth 2.0 settings.

``auth_method`` is ``password`` (what every existing channel keeps) or ``oauth2``. The OAuth
columns hold only what is not secret: the client id (public by design), the Microsoft tenant,
endpoint URLs for a provider without a preset, and the scopes (JSON list; NULL means the
preset's). Tokens and client secrets never come here: they live in the keyring.

Plain ``text`` columns on both engines, as migration 0003 made every other text column on
PostgreSQL; ``NOT NULL DEFAULT ''`` fills the existing rows.
"""

from __future__ import annotations

import peewee as pw

COLUMNS = (
    ("auth_method", "NOT NULL DEFAULT 'password'"),
    ("oauth_client_id", "NOT NULL DEFAULT ''"),
    ("oauth_tenant", "NOT NULL DEFAULT ''"),
    ("oauth_authorize_url", "NOT NULL DEFAULT ''"),
    ("oauth_token_url", "NOT NULL DEFAULT ''"),
    ("oauth_device_url", "NOT NULL DEFAULT ''"),
    ("oauth_scopes", ""),
)


def upgrade(database: pw.Database) -> None:
    """Add the sign-in columns to ``channel``."""
    for name, constraint in COLUMNS:
        database.execute_sql(f"ALTER TABLE channel ADD COLUMN {name} TEXT {constraint}".rstrip())
