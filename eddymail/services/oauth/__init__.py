"""OAuth 2.0 sign-in for channels: settings, the token endpoint, flows and the token store.

``settings`` resolves what a channel's authorization server is (preset, config file, the
channel's own values); ``endpoint`` speaks to it through authlib (imported only here, and
only when a token is really needed, so start-up stays cheap); ``flows`` gets the first
tokens (device flow, authorization code with PKCE); ``store`` keeps them in the keyring and
refreshes the access token under a lock; ``diagnosis`` turns a provider's refusal into a
sentence that says what to do.
"""
