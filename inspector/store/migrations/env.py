"""Alembic environment: run by `inspector db upgrade` and by the store's checks, always with the
connection they pass in (never a URL from an ini file)."""

from alembic import context

from inspector.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters by copy
with context.begin_transaction():
    context.run_migrations()
