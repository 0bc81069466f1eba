"""The micro-batcher: concurrent requests to one model become one batched forward pass.

Each model has an `asyncio.Queue` and one worker task.  The worker waits for
a first request, then collects more until it holds `max_batch` of them or
`max_wait_ms` have passed since the first arrived, and runs the task's
`predict` and `to_record` on the whole group in a single worker thread, so
the event loop keeps accepting, decoding and answering requests while the
model works.  Each request gets its own future; a request whose client gave
up (cancelled future) is skipped, not answered.  The queue is bounded: when
it is full the caller gets `QueueFull` at once (an HTTP 503), not a growing
backlog.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from recog.api import Recognizer
from recog.types import Selection


class QueueFull(Exception):
    """The model's queue is at capacity."""


@dataclass
class _Item:
    image: torch.Tensor  # prepared: the model's input size, uint8 (3, h, w)
    meta: dict[str, Any]
    top_k: int
    future: asyncio.Future[dict[str, Any]]
    reject: bool = True  # apply the run's out-of-distribution rule
    queued: float = field(default_factory=time.perf_counter)
    selection: Selection = field(default_factory=Selection)  # the request's conf, iou, max_det


#: called after every batch with (batch size, seconds of inference)
BatchObserver = Callable[[int, float], None]


class MicroBatcher:
    """Groups requests to one `Recognizer` into batches of up to `max_batch`."""

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        max_batch: int = 16,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self.max_queue = max_queue
        self.observer = observer
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # one thread per model: a model runs one batch at a time
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recog-infer")

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _ensure_started(self) -> asyncio.Queue[_Item]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:
            # a queue belongs to one event loop; a new loop (a restarted app) gets a new one
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._loop, self._worker = loop, None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(self._queue))
        return self._queue

    async def submit(
        self,
        image: torch.Tensor,
        meta: dict[str, Any],
        *,
        top_k: int,
        reject: bool = True,
        selection: Selection | None = None,
    ) -> dict[str, Any]:
        """The JSON record for one prepared image; raises `QueueFull` when overloaded."""
        queue = self._ensure_started()
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        item = _Item(image, meta, top_k, future, reject=reject, selection=selection or Selection())
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull from None
        return await future

    async def _collect(self, queue: asyncio.Queue[_Item]) -> list[_Item]:
        batch = [await queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch:
            try:
                batch.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return [item for item in batch if not item.future.done()]

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            if not batch:
                continue
            try:
                records = await loop.run_in_executor(self._executor, self._infer, batch)
            except Exception as exc:  # a model failure fails its requests, not the worker
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, record in zip(batch, records, strict=True):
                if not item.future.done():
                    item.future.set_result(record)

    def _infer(self, batch: list[_Item], observe: bool = True) -> list[dict[str, Any]]:
        """Runs in the model's thread: one forward pass per group of equal input shapes."""
        start = time.perf_counter()
        rec = self.recognizer
        records: list[dict[str, Any] | None] = [None] * len(batch)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, item in enumerate(batch):
            groups.setdefault((*item.image.shape, item.reject, item.selection), []).append(i)
        with torch.inference_mode():
            for key, indices in groups.items():
                images = torch.stack([batch[i].image for i in indices]).to(rec.device)
                # the run's temperature, reject rule and selection apply as in `Recognizer.predict`
                preds = rec.predict_batch(images, [batch[i].meta for i in indices],
                                          reject=key[-2], selection=key[-1])  # fmt: skip
                for i, pred in zip(indices, preds, strict=True):
                    records[i] = rec.task.to_record(pred, top_k=batch[i].top_k)
        if observe and self.observer is not None:
            self.observer(len(batch), time.perf_counter() - start)
        return [r for r in records if r is not None]

    async def warm_up(self) -> None:
        """One forward pass on a blank image, so the first user does not pay for it."""
        size = self.recognizer.img_size
        image, meta = self.recognizer.task.prepare(torch.zeros((3, size, size), dtype=torch.uint8))
        loop = asyncio.get_running_loop()
        item = _Item(image, meta, 1, loop.create_future())
        await loop.run_in_executor(self._executor, self._infer, [item], False)

    async def close(self) -> None:
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._worker.cancel()
            try:
                await self._worker
            except (asyncio.CancelledError, Exception):
                pass
        self._worker = None
        if self._queue is not None and self._loop is asyncio.get_running_loop():
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if not item.future.done():
                    item.future.cancel()
        self._queue = None
        # the executor's one thread stays (idle) so the app can be started again
