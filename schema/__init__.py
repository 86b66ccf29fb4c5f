"""Contracts only: settings, names, routes, errors, models and views, pricing, tables,
migrations. May import: nothing of genq's."""
