"""The contracts of genq: settings, names, API and job models, tables and migrations."""
