"""Mail that leaves: the outbox, automatic notifications and their templates."""
