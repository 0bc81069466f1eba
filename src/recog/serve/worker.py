"""Gradient work of a request (explanations, attacks): bounded, off the event loop, cancelled when its answer is gone.

Such work is heavy (a 40-megapixel upload decoded, then dozens of forward and
backward passes), so one app runs at most `Limits.heavy_slots` jobs at once
(`HeavyGate`): a request that finds no free slot within `Limits.heavy_wait_s`
is answered 503 with Retry-After, not queued without bound.  Each job gets
its own thread (not Starlette's pool of 40) and a cancel event; a job whose
request timed out (504) stops at its model's next forward pass (`cancellable`)
and frees its slot, so abandoned work neither piles up threads nor holds the
model.  The image is brought to what the model needs first (`model_sized`).
A bad upload keeps its own status, a user's mistake (`RecogError`) is a 422.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

import torch

from recog.errors import RecogError
from recog.serve.errors import ApiError
from recog.serve.limits import Limits, UploadError, decode_upload

T = TypeVar("T")


class Cancelled(Exception):
    """A job whose request was already answered (time-out, client gone)."""


class HeavyGate:
    """At most `slots` heavy jobs of one app at once; a request waits `wait_s` for a slot."""

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots, self.wait_s = slots, wait_s
        self._free = threading.BoundedSemaphore(slots)

    async def enter(self, what: str) -> None:
        """Take a slot, or `ApiError` 503 with Retry-After once `wait_s` has passed."""
        deadline = time.monotonic() + self.wait_s
        # polled rather than awaited on an asyncio lock: slots are freed by worker threads
        while not self._free.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise ApiError(
                    503,
                    "busy",
                    f"the server runs {self.slots} explanation(s) or attack(s) at a time and "
                    f"none freed up in {self.wait_s:g} s; retry the {what} shortly",
                    headers={"Retry-After": str(max(1, math.ceil(self.wait_s)))},
                )
            await asyncio.sleep(0.05)

    def leave(self) -> None:
        self._free.release()


@contextmanager
def cancellable(model: torch.nn.Module, cancel: threading.Event) -> Iterator[None]:
    """`Cancelled` at `model`'s next forward pass once `cancel` is set: every step of an
    explanation or an attack runs the model, so no loop of theirs needs to know."""

    def check(module: torch.nn.Module, args: Any) -> None:
        if cancel.is_set():
            raise Cancelled

    handle = model.register_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()


def model_sized(image: torch.Tensor, rec: Any) -> torch.Tensor:
    """`image` (3, H, W) no larger than the model needs: the task's `decode_size`, or, for
    a task that keeps each image's size, the run's `img_size` on the longer side (its
    cost grows with the pixels; the maps and images a heavy route answers are drawn
    at the model's input size anyway)."""
    from torchvision.transforms.v2.functional import resize

    h, w = (int(v) for v in image.shape[-2:])
    want = rec.task.decode_size(w, h)
    if want is None:
        side = int(rec.config.img_size)
        want = (side * w / max(w, h), side * h / max(w, h))
    scale = max(want[0] / w, want[1] / h)  # never below `want` on either side
    if scale >= 1:
        return image
    size = [max(1, round(h * scale)), max(1, round(w * scale))]
    return resize(image, size, antialias=True)


def heavy_image(data: bytes, limits: Limits, rec: Any) -> tuple[torch.Tensor, tuple[int, int]]:
    """The upload decoded under the heavy routes' pixel cap and brought to the model's size
    (`model_sized`), with the upload's own (width, height)."""
    cap = min(limits.max_pixels, limits.heavy_pixels)
    image = decode_upload(data, replace(limits, max_pixels=cap)).image
    return model_sized(image, rec), (int(image.shape[-1]), int(image.shape[-2]))


async def in_worker(
    gate: HeavyGate, work: Callable[[threading.Event], T], timeout_s: float, what: str
) -> T:
    """`work(cancel)` in a thread of its own under `gate`; `what` names it in messages."""
    await gate.enter(what)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    cancel = threading.Event()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():  # answered already (time-out): the result goes nowhere
            return
        if error is None:
            done.set_result(result)
        else:
            done.set_exception(error)

    def run() -> None:
        result, error = None, None
        try:
            result = work(cancel)
        except Exception as exc:  # noqa: BLE001 - handed to the request that waits for it
            error = exc
        finally:
            gate.leave()
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed (the server stopped)
            pass

    threading.Thread(target=run, name=f"recog-{what}", daemon=True).start()
    try:
        return await asyncio.wait_for(done, timeout_s)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except RecogError as exc:
        raise ApiError(422, "bad_request", str(exc)) from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"the {what} did not finish in time") from None
    finally:
        cancel.set()  # a no-op once the job is done; otherwise it stops at its next step
