"""How `recog predict --out` splits this machine's cores between decoding and the model.

Measured, not guessed: the first batch is read, decoded and prepared here (D
seconds an image, on one core), then run through the model twice on one thread
(the second call timed: M seconds an image; the first pays one-time set-up).
With C cores the cheapest of these (`cost`) is taken:

- no workers: decode here, the model on all C cores: D + M / C;
- W < C workers, the model on the other C - W cores: max(D / W, M / (C - W));
- C workers beside a one-thread model, the cores time-shared: max((D + M) / C, M).

The model's threads never share a core with a worker while it has more than one:
a model thread that loses its core stalls its partners at every OpenMP barrier.
Measured on 2 cores and 2,000 JPEGs of 128-512 px (`bench/predict_stream.py`):
a `cnn` at 64 px (D 0.6 ms, M 3.6 ms) took 5.6 s decoding here and 7.1-7.4 s
with two workers beside two model threads; a width-16 `cnn` at 32 px (D 0.6-0.8
ms, M 0.4 ms) 1.6 s decoding here, 1.2-1.3 s with workers.  On a GPU M is small
and every core decodes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from recog.batch.reader import PreparedBatch, PreparedImages, collate


def cores() -> int:
    """The cores this process may run on (a container's or taskset's limit included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cost(decode_s: float, model_s: float, n_cores: int, workers: int) -> float:
    """Seconds an image with `workers` decoding processes (the model on the cores left)."""
    if workers == 0:  # decode here, between batches; the model on every core
        return decode_s + model_s / n_cores
    if workers < n_cores:  # a core each, never shared: the slower side sets the pace
        return max(decode_s / workers, model_s / (n_cores - workers))
    # as many workers as cores beside a one-thread model: the cores are time-shared
    return max((decode_s + model_s) / n_cores, model_s)


def split_cores(decode_s: float, model_s: float, n_cores: int) -> tuple[int, int]:
    """(decoding workers, model threads): the cheapest of 0..n_cores workers by `cost`."""
    if n_cores <= 1 or decode_s <= 0:
        return 0, max(1, n_cores)
    workers = min(range(n_cores + 1), key=lambda w: (cost(decode_s, model_s, n_cores, w), w))
    return workers, n_cores if workers == 0 else max(1, n_cores - workers)


@dataclass
class Plan:
    workers: int
    threads: int
    decode_ms: float | None = None  # per image, one core (None: not measured)
    model_ms: float | None = None

    def describe(self) -> str:
        measured = (
            f"decode {self.decode_ms:.2f} ms/img, model {self.model_ms:.2f} ms/img on one core: "
            if self.decode_ms is not None
            else ""
        )
        return f"{measured}{self.workers} decoding workers, {self.threads} model threads"


def measure(rec: Any, names: list[str], *, reject: bool) -> tuple[PreparedBatch, float, float]:
    """The first batch prepared here, and (decode, model) seconds per image on one core."""
    images = PreparedImages(names, rec.task)
    start = time.perf_counter()
    batch = collate([images[i] for i in range(len(images))])
    decode_s = (time.perf_counter() - start) / max(1, len(names))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model_s = 0.0
        for _ in range(2):  # the first call sets up kernels; the second is the cost
            start = time.perf_counter()
            batch.predictions = [
                rec.predict_batch(tensor.to(rec.device), metas, reject=reject)
                for _, tensor, metas in batch.groups
            ]  # kept: the job writes the timed pass's answers, not a third pass's
            model_s = (time.perf_counter() - start) / max(1, len(names))
    finally:
        torch.set_num_threads(threads)
    return batch, decode_s, model_s


def plan(rec: Any, first: list[str], *, workers: int | None, reject: bool,
         n_cores: int | None = None) -> tuple[Plan, PreparedBatch | None]:  # fmt: skip
    """The split for this job, and the first batch when it was prepared to measure it.
    `workers` given: used as given, the model on the cores left."""
    n = cores() if n_cores is None else n_cores
    if workers is not None:
        return Plan(workers, max(1, n - workers) if workers else n), None
    batch, decode_s, model_s = measure(rec, first, reject=reject)
    w, t = split_cores(decode_s, model_s, n)
    if t != 1:
        # answers made on one thread are kept only when the job runs on one: a kernel may sum
        # in another order on more, and a resumed job must write what an uninterrupted one does
        batch.predictions = None
    return Plan(w, t, decode_s * 1e3, model_s * 1e3), batch
