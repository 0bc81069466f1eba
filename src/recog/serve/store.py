"""The history store: predictions, user feedback and (optionally) images, through SQLAlchemy.

Any SQLAlchemy URL works; the default is a SQLite file in the working
directory.  Three tables: `predictions` (time, model, task, image SHA-256
and size, result JSON, latency), `feedback` (the user's correction of one
prediction: a label, or a list of boxes; the newest one counts) and
`images` (the uploaded bytes by SHA-256, written only when the server runs
with `--keep-images`).  Methods are synchronous; the web app calls them in
a worker thread.  SQLite runs in WAL mode so readers never wait for the
writer and a commit costs no fsync of the whole file.  A URL that is not one, names a
database driver that is not installed, or a database that cannot be opened
is a `RecogError` naming the URL (its password hidden).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from recog.errors import RecogError
from recog.types import CorrectedExample  # the record `corrected` yields (tasks export it)

DEFAULT_DB_URL = "sqlite:///recog-history.db"


class _Base(DeclarativeBase):
    pass


class PredictionRow(_Base):
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


class FeedbackRow(_Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prediction_id: Mapped[str] = mapped_column(ForeignKey("predictions.id"), index=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: [{"label": str, "box": [x1, y1, x2, y2]}] in original-image pixels, or null
    boxes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)


class ImageRow(_Base):
    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
    # SQLite hands back naive datetimes; they were written in UTC
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.isoformat(timespec="milliseconds")


def make_engine(url: str) -> Engine:
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
    return create_engine(url, pool_pre_ping=True)


def _shown(url: str) -> str:
    """`url` as it may be printed: quoted, its password hidden."""
    try:
        return repr(make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return repr(url)


class Store:
    """Prediction history and feedback in any SQLAlchemy database."""

    def __init__(self, url: str = DEFAULT_DB_URL) -> None:
        self.url = url
        self.shown = shown = _shown(url)  # what may be printed
        try:
            self.engine = make_engine(url)
        except NoSuchModuleError:  # an ArgumentError too: first
            kind = url.partition(":")[0]
            raise RecogError(f"history store {shown}: unknown kind of database {kind!r}") from None
        except (ArgumentError, ValueError):
            raise RecogError(
                f"history store {shown}: not a database URL "
                f"(e.g. {DEFAULT_DB_URL} or postgresql://user@host/db)"
            ) from None
        except ImportError as exc:
            raise RecogError(
                f"history store {shown}: its database driver is not installed ({exc})"
            ) from None
        try:
            _Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise RecogError(f"history store {shown}: cannot open it ({reason})") from None
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

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
    ) -> None:
        with self._session.begin() as s:
            s.add(
                PredictionRow(
                    id=prediction_id,
                    created=_now(),
                    model=model,
                    task=task,
                    image_sha256=image_sha256,
                    width=width,
                    height=height,
                    result=result,
                    latency_ms=latency_ms,
                )
            )
            if image is not None and s.get(ImageRow, image_sha256) is None:
                s.add(ImageRow(sha256=image_sha256, media_type=media_type or "", data=image))

    def prediction(self, prediction_id: str) -> dict[str, Any] | None:
        with self._session() as s:
            row = s.get(PredictionRow, prediction_id)
            return None if row is None else self._as_dict(s, row)

    def add_feedback(
        self,
        prediction_id: str,
        *,
        label: str | None,
        boxes: list[dict[str, Any]] | None,
        comment: str | None,
    ) -> dict[str, Any] | None:
        """The stored feedback, or None when no such prediction exists."""
        with self._session.begin() as s:
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
        with self._session() as s:
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
        with self._session() as s:
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
