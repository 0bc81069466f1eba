"""Gradient work of a request (explanations, attacks) off the event loop, its errors as API errors.

Such work runs in a worker thread within the upload limits' time-out; a bad upload
keeps its own status, a user's mistake (`RecogError`) is a 422 and a time-out a 504,
so no failure of one request reaches the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from recog.errors import RecogError
from recog.serve.errors import ApiError
from recog.serve.limits import UploadError

T = TypeVar("T")


async def in_worker(work: Callable[[], T], timeout_s: float, what: str) -> T:
    """`work()` in a thread; `what` names it in the time-out's message."""
    try:
        return await asyncio.wait_for(run_in_threadpool(work), timeout_s)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except RecogError as exc:
        raise ApiError(422, "bad_request", str(exc)) from None
    except TimeoutError:
        raise ApiError(504, "timeout", f"the {what} did not finish in time") from None
