"""Streaming prediction: inputs in, one row per image out as each batch finishes.

The local engine of `recog predict --out`: `reader.prepared_batches` decodes in
worker processes, the model runs here on a batch of equal-sized images at a time
(a task may keep each image's own size), the task's `OUTPUT.columns` make the rows and
the sink (`writer`) writes them.  Nothing grows with the number of images but
the list of their names.  A file that cannot be read becomes a row with its
`error` and one warning line; the caller exits non-zero when any did.

Progress: a rich bar (images/s, ETA) on a terminal, else one line every
`LOG_EVERY_S` seconds on stderr, so a job in a log still says how far it is.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from recog.api.facet import OUTPUT
from recog.api.results import NON_FINITE, all_finite
from recog.batch.plan import Plan, plan
from recog.batch.reader import PreparedBatch, prepared_batches
from recog.batch.rows import make_row
from recog.console import console, progress_bar, warn

LOG_EVERY_S = 10.0
#: bad files warned about one by one; past this, only the count at the end
MAX_WARNINGS = 20


@dataclass
class StreamSummary:
    images: int  # predicted or failed in this job
    skipped: int  # already in the output (--resume)
    errors: int  # unreadable images in the whole output (an earlier job's rows too)
    seconds: float

    @property
    def rate(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def job_settings(rec: Any, *, top_k: int, batch_size: int, reject: bool) -> dict[str, Any]:
    """What decides the numbers in the output: a resume must match them (the recognizer's
    `selection`, `--conf --iou --max-det`, among them when set)."""
    chosen = {k: v for k, v in asdict(rec.selection).items() if v is not None}
    return {
        "run": str(rec.run_dir.resolve()),
        "model": str(rec.config.model),
        "task": rec.task.name,
        "top_k": top_k,
        "batch_size": batch_size,
        "reject": reject,
        **({"selection": chosen} if chosen else {}),
    }


def predict_rows(
    rec: Any, batch: PreparedBatch, *, top_k: int, reject: bool
) -> tuple[list[dict[str, Any]], list[Any]]:
    """Rows (in input order) for a prepared batch, and the predictions (None for an error)."""
    run, model, task = str(rec.run_dir.resolve()), str(rec.config.model), rec.task.name
    preds: list[Any] = [None] * len(batch.names)
    for g, (positions, images, metas) in enumerate(batch.groups):
        if batch.predictions is not None:
            out = batch.predictions[g]
        else:
            out = rec.predict_batch(images.to(rec.device), metas, reject=reject)
        for i, pred in zip(positions, out, strict=True):
            preds[i] = pred
    rows = []
    for name, error, pred in zip(batch.names, batch.errors, preds, strict=True):
        if pred is not None and not all_finite(pred):  # checked before the task's columns,
            pred, error = None, f"{name}: {NON_FINITE}"  # whose --conf filter drops NaN scores
        columns = None if pred is None else OUTPUT.of(rec.task).columns(rec.task, pred, top_k=top_k)
        rows.append(make_row(name, task=task, model=model, run=run, columns=columns, error=error))
    # a refused answer (NaN scores) is an error row: nothing to draw either
    return rows, [None if row["error"] else pred for row, pred in zip(rows, preds, strict=True)]


class _PlainProgress:
    """A line every LOG_EVERY_S seconds when stderr is not a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.start, self.last = total, 0, time.perf_counter(), 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= LOG_EVERY_S or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / max(rate, 1e-9)
            print(
                f"recog: predict {self.done}/{self.total} images, {rate:.0f} img/s, eta {eta:.0f} s",
                file=sys.stderr,
                flush=True,
            )


def predict_stream(
    rec: Any, inputs: Sequence[str], sink: Any, *, batch_size: int, num_workers: int | None,
    top_k: int = 5, reject: bool = True,
    on_batch: Callable[[list[str], list[Any]], None] | None = None,
) -> StreamSummary:  # fmt: skip
    """Predict every input not already in `sink` and write its rows; the sink is closed.
    `num_workers` None: as many as `plan` measures this model and these images want."""
    done = set(sink.done())
    todo = [name for name in inputs if name not in done]
    start = time.perf_counter()
    split, first = plan(rec, todo[:batch_size], workers=num_workers, reject=reject)
    if todo:
        print(f"recog: predict {len(todo)} images: {split.describe()}", file=sys.stderr)
    threads = torch.get_num_threads()
    torch.set_num_threads(split.threads)
    try:
        return _run(rec, inputs, todo, sink, first, split, start, batch_size=batch_size,
                    top_k=top_k, reject=reject, on_batch=on_batch)  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _batches(rec: Any, todo: list[str], first: PreparedBatch | None, workers: int,
             batch_size: int) -> Iterator[PreparedBatch]:  # fmt: skip
    """The measured first batch (when there is one), then the rest from the workers."""
    if first is not None:
        yield first
        todo = todo[batch_size:]
    if todo:  # no workers forked for nothing
        yield from prepared_batches(todo, rec.task, batch_size=batch_size, num_workers=workers)


def _run(rec: Any, inputs: Sequence[str], todo: list[str], sink: Any, first: PreparedBatch | None,
         split: Plan, start: float, *, batch_size: int, top_k: int, reject: bool,
         on_batch: Callable[[list[str], list[Any]], None] | None) -> StreamSummary:  # fmt: skip
    errors = 0
    terminal = console().is_terminal
    plain = None if terminal else _PlainProgress(len(todo))
    with progress_bar(unit="img") as bar:
        task = bar.add_task("predict", total=len(todo), info="")
        with torch.inference_mode():
            for batch in _batches(rec, todo, first, split.workers, batch_size):
                rows, preds = predict_rows(rec, batch, top_k=top_k, reject=reject)
                sink.write(rows)
                for row in rows:  # unreadable files and refused answers alike
                    if row["error"] is not None:
                        errors += 1
                        if errors <= MAX_WARNINGS:
                            warn(row["error"])
                if on_batch is not None:
                    on_batch(batch.names, preds)
                bar.advance(task, len(batch.names))
                if plain is not None:
                    plain.advance(len(batch.names))
    sink.close()
    if errors > MAX_WARNINGS:
        warn(f"{errors - MAX_WARNINGS} more images could not be read (their rows hold `error`)")
    earlier = int(getattr(sink, "done_errors", 0))
    return StreamSummary(
        len(todo), len(inputs) - len(todo), errors + earlier, time.perf_counter() - start
    )
