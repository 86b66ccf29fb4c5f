"""Plumbing below the store: database, Redis, brokers, logs, metrics, error reports,
scrubbing, the SSRF guard. May import: schema."""
