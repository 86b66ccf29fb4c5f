"""The way through: actors, execution, providers, admission, polling, scheduler, webhooks.
May import: store, infra, schema (never producers)."""
