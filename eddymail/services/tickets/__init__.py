"""Working tickets: listing and reading them, staff actions, attachments, customers."""
