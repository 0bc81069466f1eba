"""What the heavy image routes (`/v1/explain`, `/v1/attack`) share: their route options,
the `model` query, and one uploaded image taken through a job on the model's explanation
copy into the answer's common frame.

The frame is the same for both: the upload under the predict route's limits, the image
brought to the model's size in a worker thread under the app's gate of heavy work
(`recog.serve.worker`: 503 when busy, 504 past the time-out, the job then cancelled at
the model's next forward pass), the job run on `ServedModel.explaining()` under its
lock, so hooks and gradients never reach the micro-batcher's forward passes; the
answer names the model, the task, the image (sha256, size) and the latency.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import Query, Request
from PIL import Image

from recog.serve.errors import error_responses
from recog.serve.routes.predict import PREDICT_BODY
from recog.serve.state import Serving
from recog.serve.upload import read_upload
from recog.serve.worker import cancellable, heavy_image, in_worker

#: the options of a heavy route's `router.post`: the upload body and its error answers
HEAVY_ROUTE: dict[str, Any] = {
    "openapi_extra": {"requestBody": PREDICT_BODY},
    "responses": error_responses(400, 401, 404, 408, 413, 415, 422, 503, 504),
}


def model_query() -> Any:
    """The `model` query parameter of a heavy route (a fresh one for each signature)."""
    return Query(None, max_length=200, description="model name (default: the first served)")


def png_url(image: Image.Image) -> str:
    """`image` as a PNG data URL, as the answers embed their pictures."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


async def on_explaining_copy(
    request: Request,
    state: Serving,
    model: str | None,
    job: Callable[[Any, Any], dict[str, Any]],
    *,
    what: str,
    check: Callable[[], None] = lambda: None,
    **fields: Any,
) -> dict[str, Any]:
    """The answer to one heavy request: `job(recognizer, image)` on the served `model`'s
    explanation copy gives the route's own keys, `fields` (the request's settings) and the
    common frame surround them.  `check` refuses bad settings once the model is found
    (an unknown model is a 404 before any 422); `what` names the job in a time-out."""
    start = time.perf_counter()
    limits = state.config.limits
    name, served = state.served(model)
    check()
    data = await read_upload(request, limits)

    def work(cancel: threading.Event) -> tuple[tuple[int, int], dict[str, Any]]:
        image, size = heavy_image(data, limits, served.recognizer)
        with served.explain_lock:
            rec = served.explaining()
            with cancellable(rec.model, cancel):
                return size, job(rec, image)

    (width, height), body = await in_worker(state.heavy, work, limits.predict_timeout_s, what)
    return {
        "model": name,
        "task": str(served.recognizer.config.task),
        **fields,
        "image": {"sha256": hashlib.sha256(data).hexdigest(), "width": width, "height": height},
        **body,
        "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
    }
