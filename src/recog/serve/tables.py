"""The history store's tables (SQLAlchemy ORM models) and the engine for a database URL.

Three tables: `predictions` (time, model, task, image SHA-256 and size,
result JSON, latency; the prediction id is the primary key, so a row can
never be written twice), `feedback` (a user's correction of one prediction)
and `images` (uploaded bytes by SHA-256, only with `--keep-images`).  The
schema itself is created by the Alembic migrations in `migrations/`
(`migrate.py`); these models are what the code reads and writes, and a test
checks that the two agree.

`engine_for(url)` turns a URL into an engine: `postgresql://` (and
`postgres://`) mean psycopg 3; SQLite runs in WAL mode; `shown(url)` is the
URL as it may be printed (its password hidden).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool

DEFAULT_DB_URL = "sqlite:///recog-history.db"

#: seconds a PostgreSQL connection attempt may take before the database counts as down
CONNECT_TIMEOUT_S = 5


class Base(DeclarativeBase):
    pass


class PredictionRow(Base):
    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    task: Mapped[str] = mapped_column(String(20))
    image_sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    latency_ms: Mapped[float] = mapped_column(Float)


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: [{"label": str, "box": [x1, y1, x2, y2]}] in original-image pixels, or null
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class ImageRow(Base):
    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)


def driver_url(url: str) -> str:
    """`url` with the driver SQLAlchemy should use: psycopg 3 for a bare PostgreSQL URL."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


def shown(url: str) -> str:
    """`url` as it may be printed: quoted, its password hidden."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return repr(url)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql", "postgres:"))


def engine_for(url: str) -> Engine:
    """An engine for `url` (raises what SQLAlchemy raises for a bad URL or a missing driver)."""
    url = driver_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
        if memory:  # one shared connection, or every thread would see its own empty database
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        if not memory:

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if is_postgres(url):
        # a database that is down must fail fast: the writer retries, readers answer 503
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
