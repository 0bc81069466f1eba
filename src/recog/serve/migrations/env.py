"""Alembic's environment for the history store: migrate the connection `migrate.py` hands over.

`recog.serve.migrate` builds the Alembic `Config` in code and puts an open
connection in `config.attributes["connection"]`; this runs the migrations
on it, comparing against the ORM models of `recog.serve.tables`.
"""

from __future__ import annotations

from alembic import context

from recog.serve.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
