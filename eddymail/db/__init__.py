"""Persistence: the one place that opens the database, the models, migrations and reused SQL."""
