"""The history store: predictions, user feedback and (optionally) images, through SQLAlchemy.

Any SQLAlchemy URL works (the tables are in `tables.py`); the default is a
SQLite file in the working directory, and `postgresql://` means psycopg 3
(`pip install 'recog[postgres]'`).  Opening a store migrates its database to
the newest schema (`migrate.py`).  A URL that is not one, names a driver
that is not installed, or a database that cannot be opened is a
`RecogError` naming the URL (its password hidden).

Writes and reads differ on purpose.  `record` (one per prediction) only
queues the row for the background writer (`writer.py`): it never waits for
the database, and the row is written when the database can take it.  Reads
(`history`, `prediction`, `add_feedback`, `corrected`) first wait briefly
for the queue to drain, so a client reads its own writes; when the
database does not answer they raise `StoreUnavailable` (the API's 503)
rather than any driver error.  Methods are synchronous; the web app calls
the reads in a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from alembic.util import CommandError
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from recog.errors import RecogError
from recog.serve import migrate
from recog.serve.tables import (
    DEFAULT_DB_URL,
    FeedbackRow,
    ImageRow,
    PredictionRow,
    driver_url,
    engine_for,
    shown,
)
from recog.serve.writer import HistoryWriter, QueuedRow
from recog.types import CorrectedExample  # the record `corrected` yields (tasks export it)

__all__ = ["DEFAULT_DB_URL", "Store", "StoreUnavailable"]

log = logging.getLogger("recog.serve")

#: seconds a read waits for the queued rows before it reads what is written
FLUSH_S = 2.0


class StoreUnavailable(RecogError):
    """A read the database cannot answer now: `code` is "store_unavailable" (the database is
    down or refused the query) or "not_recorded_yet" (the prediction is still queued)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
    # SQLite hands back naive datetimes; they were written in UTC
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="milliseconds")


def _reason(exc: BaseException) -> str:
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def insert_new(conn: Connection, table: Any, rows: list[dict[str, Any]], key: str) -> None:
    """INSERT `rows`, skipping those whose `key` is already stored (a retried batch)."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        conn.execute(insert(table).on_conflict_do_nothing(index_elements=[key]), rows)
        return
    column = table.c[key]
    have = set(conn.scalars(select(column).where(column.in_([r[key] for r in rows]))))
    fresh = [r for r in rows if r[key] not in have]
    if fresh:
        conn.execute(table.insert(), fresh)


class Store:
    """Prediction history and feedback in any SQLAlchemy database, written behind a queue."""

    def __init__(
        self,
        url: str = DEFAULT_DB_URL,
        *,
        queue: int = 10_000,
        queue_bytes: int = 256 * 2**20,
        probe_s: float = 2.0,
    ) -> None:
        self.url = url
        self.shown = where = shown(url)  # what may be printed
        try:
            self.engine = engine_for(url)
        except NoSuchModuleError:  # an ArgumentError too: first
            kind = url.partition(":")[0]
            raise RecogError(f"history store {where}: unknown kind of database {kind!r}") from None
        except (ArgumentError, ValueError):
            raise RecogError(
                f"history store {where}: not a database URL "
                f"(e.g. {DEFAULT_DB_URL} or postgresql://user@host/db)"
            ) from None
        except ImportError as exc:
            if driver_url(url).startswith("postgresql+psycopg:"):
                raise RecogError(
                    f"history store {where}: PostgreSQL needs psycopg 3 "
                    "(pip install 'recog[postgres]')"
                ) from None
            raise RecogError(
                f"history store {where}: its database driver is not installed ({exc})"
            ) from None
        try:
            migrate.upgrade(self.engine)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise RecogError(f"history store {where}: cannot open it ({_reason(exc)})") from None
        except CommandError as exc:  # e.g. a schema newer than this recog's migrations
            self.engine.dispose()
            raise RecogError(
                f"history store {where}: cannot migrate its schema ({_reason(exc)}; "
                "a newer recog may have migrated it)"
            ) from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self.writer = HistoryWriter(
            self._write_batch, self._probe, bound=queue, max_bytes=queue_bytes, probe_s=probe_s
        )
        self._closed = False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is still queued (for at most `timeout` s), then let the database go."""
        if not self._closed:
            self._closed = True
            self.writer.close(timeout)
            self.engine.dispose()

    def health(self) -> dict[str, Any]:
        """{"status": "ok" | "degraded", "detail", "queued", "dropped"} (never touches the database)."""
        return self.writer.health()

    def record(
        self,
        *,
        prediction_id: str,
        model: str,
        task: str,
        image_sha256: str,
        width: int,
        height: int,
        result: dict[str, Any],
        latency_ms: float,
        image: bytes | None = None,
        media_type: str | None = None,
    ) -> bool:
        """Queue one prediction for the history (never blocks); False: dropped, the queue is full."""
        values = {
            "id": prediction_id,
            "created": _now(),
            "model": model,
            "task": task,
            "image_sha256": image_sha256,
            "width": width,
            "height": height,
            "result": result,
            "latency_ms": latency_ms,
        }
        kept = None
        if image is not None:
            kept = {"sha256": image_sha256, "media_type": media_type or "", "data": image}
        size = 1024 + (len(image) if image is not None else 0)
        return self.writer.put(QueuedRow(prediction_id, values, kept, size))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until what was recorded so far is written (at most `timeout`, default `FLUSH_S`
        seconds; not at all while the database is down); whether it was."""
        return self.writer.flush(FLUSH_S if timeout is None else timeout)

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        self.flush()
        with self._reading(), self._session() as s:
            row = s.get(PredictionRow, prediction_id)
            found = None if row is None else self._as_dict(s, row)
        if found is None and self.writer.pending(prediction_id):
            raise StoreUnavailable(
                "not_recorded_yet",
                f"prediction {prediction_id!r} is not written to the history yet; retry shortly",
            )
        return found

    def add_feedback(
        self,
        prediction_id: str,
        *,
        label: str | None,
        boxes: list[dict[str, Any]] | None,
        comment: str | None,
    ) -> dict[str, Any] | None:
        """The stored feedback, or None when no such prediction exists."""
        self.flush()
        with self._reading(), self._session.begin() as s:
            if s.get(PredictionRow, prediction_id) is None:
                return None
            row = FeedbackRow(
                prediction_id=prediction_id,
                created=_now(),
                label=label,
                boxes=boxes,
                comment=comment,
            )
            s.add(row)
            s.flush()
            return self._feedback_dict(row)

    def history(
        self, *, limit: int = 50, before: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is a prediction id to page past."""
        self.flush()
        with self._reading(), self._session() as s:
            query = select(PredictionRow).order_by(PredictionRow.created.desc()).limit(limit)
            if model is not None:
                query = query.where(PredictionRow.model == model)
            if before is not None:
                anchor = s.get(PredictionRow, before)
                if anchor is not None:
                    query = query.where(PredictionRow.created < anchor.created)
            return [self._as_dict(s, row) for row in s.scalars(query)]

    def corrected(self, *, model: str | None = None) -> Iterator[CorrectedExample]:
        """Every prediction that has feedback, with its newest correction, oldest first."""
        self.flush()
        with self._reading(), self._session() as s:
            query = (
                select(PredictionRow)
                .where(PredictionRow.id.in_(select(FeedbackRow.prediction_id)))
                .order_by(PredictionRow.created)
            )
            if model is not None:
                query = query.where(PredictionRow.model == model)
            for row in s.scalars(query):
                fb = self._latest_feedback(s, row.id)
                assert fb is not None
                img = s.get(ImageRow, row.image_sha256)
                yield CorrectedExample(
                    prediction_id=row.id,
                    model=row.model,
                    task=row.task,
                    image_sha256=row.image_sha256,
                    width=row.width,
                    height=row.height,
                    label=fb.label,
                    boxes=fb.boxes,
                    media_type=img.media_type if img is not None else None,
                    image=img.data if img is not None else None,
                )

    # ------------------------------------------------------------ the writer's side
    def _write_batch(self, rows: list[QueuedRow]) -> None:
        """One transaction: the rows not yet stored, and their kept images not yet stored."""
        images = {r.image["sha256"]: r.image for r in rows if r.image is not None}
        with self.engine.begin() as conn:
            insert_new(conn, PredictionRow.__table__, [r.values for r in rows], "id")
            insert_new(conn, ImageRow.__table__, list(images.values()), "sha256")

    def _probe(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """A read's database errors as one `StoreUnavailable`, never a driver traceback."""
        try:
            yield
        except SQLAlchemyError as exc:
            log.warning("history: a read failed (%s)", _reason(exc))
            raise StoreUnavailable(
                "store_unavailable", "the history database is not answering; retry shortly"
            ) from None

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _latest_feedback(s: Session, prediction_id: str) -> FeedbackRow | None:
        return s.scalars(
            select(FeedbackRow)
            .where(FeedbackRow.prediction_id == prediction_id)
            .order_by(FeedbackRow.id.desc())
            .limit(1)
        ).first()

    @staticmethod
    def _feedback_dict(row: FeedbackRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "prediction_id": row.prediction_id,
            "created": _iso(row.created),
            "label": row.label,
            "boxes": row.boxes,
            "comment": row.comment,
        }

    def _as_dict(self, s: Session, row: PredictionRow) -> dict[str, Any]:
        fb = self._latest_feedback(s, row.id)
        return {
            "id": row.id,
            "created": _iso(row.created),
            "model": row.model,
            "task": row.task,
            "image": {"sha256": row.image_sha256, "width": row.width, "height": row.height},
            "result": row.result,
            "latency_ms": row.latency_ms,
            "feedback": None if fb is None else self._feedback_dict(fb),
        }
