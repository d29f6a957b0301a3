"""The REST API foundation: authentication, permissions, errors, idempotency, concurrency."""
