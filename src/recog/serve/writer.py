"""The history's write-behind queue: a prediction is answered whatever its database is doing.

`HistoryWriter.put(row)` appends to a bounded in-memory queue and returns
at once; it never touches the database, so it can neither block nor fail a
prediction.  When the queue holds `bound` rows (or `max_bytes` of them:
kept images are large), the new row is not queued but counted as dropped.
One background thread drains the queue in batches through the `write`
function it was given.  A row leaves the queue only after its batch was
committed, so when the database is down the rows stay queued and the
thread retries with exponential backoff; the store is then "degraded"
until a write (or, when idle, a `probe`) succeeds again.

A failed commit may still have been committed (the connection can drop
after the server committed, before it said so): `write` must skip rows
whose id is already stored, so the retry writes each row once.  An error
that is not about the connection (a row the database refuses) is retried
row by row, and only the refused rows are dropped ("rejected").
`close(timeout)` keeps writing what is queued until the queue is empty or
the time is up.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("recog.serve")


@dataclass(frozen=True)
class QueuedRow:
    """One prediction waiting to be written: its column values and, if kept, its image."""

    id: str
    values: dict[str, Any]
    image: dict[str, Any] | None = None  # {"sha256", "media_type", "data"}
    nbytes: int = 1024


def transient(exc: BaseException) -> bool:
    """Whether `exc` says the database is unreachable (retry later) rather than refusing a row."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return not isinstance(exc, SQLAlchemyError)  # e.g. an OSError from the driver


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


class HistoryWriter:
    """A bounded queue of history rows and the one thread that writes them."""

    def __init__(
        self,
        write: Callable[[list[QueuedRow]], None],
        probe: Callable[[], None],
        *,
        bound: int = 10_000,
        max_bytes: int = 256 * 2**20,
        batch: int = 500,
        probe_s: float = 2.0,
        backoff_s: tuple[float, float] = (0.05, 2.0),
        name: str = "history",
    ) -> None:
        if bound < 1:
            raise ValueError("the history queue needs room for at least one row")
        self.write, self.probe = write, probe
        self.bound, self.max_bytes, self.batch = bound, max_bytes, batch
        self.probe_s, self.backoff_s = probe_s, backoff_s
        self._queue: collections.deque[QueuedRow] = collections.deque()
        self._ids: set[str] = set()
        self._bytes = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._deadline = float("inf")
        self.accepted = self.done = self.written = 0
        self.dropped = {"queue_full": 0, "rejected": 0}
        self.failure: str | None = None  # why the last attempt failed; None: it worked
        self.failing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"recog-{name}-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ request side
    def put(self, row: QueuedRow) -> bool:
        """Queue `row` (never blocks); False when it was dropped because the queue is full."""
        with self._cond:
            full = len(self._queue) >= self.bound or self._bytes + row.nbytes > self.max_bytes
            if full or self._stop.is_set():
                self.dropped["queue_full"] += 1
                return False
            self._queue.append(row)
            self._ids.add(row.id)
            self._bytes += row.nbytes
            self.accepted += 1
            self._cond.notify_all()
            return True

    def queued(self) -> int:
        return len(self._queue)

    def pending(self, row_id: str) -> bool:
        """Whether `row_id` is queued, not yet written."""
        with self._cond:
            return row_id in self._ids

    def flush(self, timeout: float) -> bool:
        """Wait until every row queued before this call is written; at once False when degraded."""
        with self._cond:
            target = self.accepted
            return self._cond.wait_for(
                lambda: self.done >= target or self.failure is not None, timeout
            ) and (self.done >= target)

    def health(self) -> dict[str, Any]:
        with self._cond:
            queued, dropped = len(self._queue), sum(self.dropped.values())
            failure, since = self.failure, self.failing_since
        if failure is None:
            return {"status": "ok", "detail": None, "queued": queued, "dropped": dropped}
        ago = time.monotonic() - (since or time.monotonic())
        detail = (
            f"the history database has not answered for {ago:.0f} s; {queued} rows queued "
            f"(room for {self.bound}), predictions are still answered"
        )
        return {"status": "degraded", "detail": detail, "queued": queued, "dropped": dropped}

    def close(self, timeout: float = 10.0) -> int:
        """Write what is queued for at most `timeout` s, then stop; the rows left unwritten."""
        with self._cond:
            self._deadline = time.monotonic() + timeout
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(timeout + 5.0)
        left = len(self._queue)
        if left:
            log.warning("history: %d rows could not be written before shutdown", left)
        return left

    # ------------------------------------------------------------ the writer thread
    def _run(self) -> None:
        delay = 0.0
        while True:
            if delay:  # backing off: sleep, but never past the shutdown deadline
                if self._stop.is_set():
                    time.sleep(max(0.0, min(delay, self._deadline - time.monotonic())))
                else:
                    self._stop.wait(delay)
            with self._cond:
                if not delay:
                    self._cond.wait_for(lambda: self._queue or self._stop.is_set(), self.probe_s)
                if self._stop.is_set() and (not self._queue or time.monotonic() >= self._deadline):
                    return
                batch = list(itertools.islice(self._queue, self.batch))
            if self._attempt(batch):
                delay = 0.0
            else:
                low, high = self.backoff_s
                delay = min(max(delay * 2, low), high)

    def _attempt(self, batch: list[QueuedRow]) -> bool:
        """Write `batch` (or probe, when empty); whether the database answered."""
        try:
            if batch:
                self.write(batch)
            else:
                self.probe()
        except Exception as exc:
            if transient(exc):
                self._failed(exc)
                return False
            return self._one_by_one(batch, exc)
        self._done(batch, written=len(batch))
        return True

    def _one_by_one(self, batch: list[QueuedRow], exc: Exception) -> bool:
        """A batch the database refused: write its rows alone, drop only those it refuses."""
        if not batch:
            self._failed(exc)
            return False
        written = 0
        for i, row in enumerate(batch):
            try:
                self.write([row])
                written += 1
            except Exception as one:
                if transient(one):
                    self._done(batch[:i], written=written)
                    self._failed(one)
                    return False
                log.error("history: row %s refused by the database (%s)", row.id, _reason(one))
        self._done(batch, written=written)
        return True

    def _failed(self, exc: BaseException) -> None:
        with self._cond:
            if self.failure is None:
                self.failing_since = time.monotonic()
                log.warning("history: database unavailable, queueing rows (%s)", _reason(exc))
            self.failure = _reason(exc)
            self._cond.notify_all()  # flush() waiters stop waiting for a database that is down

    def _done(self, batch: list[QueuedRow], *, written: int) -> None:
        with self._cond:
            for _ in batch:
                row = self._queue.popleft()
                self._ids.discard(row.id)
                self._bytes -= row.nbytes
            self.done += len(batch)
            self.written += written
            self.dropped["rejected"] += len(batch) - written
            if self.failure is not None:
                log.warning("history: database back, %d rows queued", len(self._queue))
            self.failure = self.failing_since = None
            self._cond.notify_all()
