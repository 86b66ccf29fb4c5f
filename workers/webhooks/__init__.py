"""Webhook delivery: signing, the SSRF-safe sender, per-receiver gates, the delivery actor's
work and the dispatch of retries that are due."""
