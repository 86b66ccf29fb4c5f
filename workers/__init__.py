"""The way through: broker setup, actors, provider adapters, retries and the scheduler."""
