"""Alembic environment: runs on the engine handed over by ``schema.store.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from schema.store import normalize_url
from schema.tables import Base

config = context.config
engine = config.attributes.get("engine") or create_engine(
    normalize_url(config.get_main_option("sqlalchemy.url") or "")
)

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
