"""The shared job store: the job state machine, outbox, budgets, usage, dead letters,
audit, tenants, keys and webhook records. May import: infra, schema."""
