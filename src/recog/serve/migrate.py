"""Bring a history database to the newest schema: Alembic's `upgrade head`, configured in code.

Every `Store` calls `upgrade(engine)` when it opens.  The Alembic `Config`
is built here (the scripts are `recog/serve/migrations/`, shipped in the
package), so a user needs no alembic.ini.  A database made by the code
before migrations (its tables exist, `alembic_version` does not) is
stamped at the first revision, then upgraded; an up-to-date database is
left as it is, so running it twice is a no-op.  On PostgreSQL the whole
upgrade holds an advisory lock, so servers started together on one
database migrate it once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

SCRIPTS = Path(__file__).resolve().parent / "migrations"
#: the revision whose schema `create_all` made before there were migrations
BASELINE = "0001"
#: the advisory lock PostgreSQL servers take while they migrate (any constant of ours)
_PG_LOCK = 0x7265636F67  # "recog"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the history store, optionally bound to `connection`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision the package ships."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database behind `engine` to `head()` (raises SQLAlchemy's errors)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
        cfg = alembic_config(conn)
        revision = current(conn)
        if revision == head():
            return
        if revision is None and inspect(conn).has_table("predictions"):
            command.stamp(cfg, BASELINE)  # made by create_all: already at the first schema
        command.upgrade(cfg, "head")
