"""`POST /v1/predict`: one uploaded image -> the model's answer, recorded in the history.

The steps: read the body under the byte cap and time-out (`upload.py`),
sniff and decode the image and prepare it for the model in a worker thread
(`limits.py`, `Task.prepare`), queue it on the model's micro-batcher
(`batcher.py`), queue the answer for the history store (which never waits
for its database), reply.  A full queue
is a 503, a model that does not answer in time a 504.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from recog.api.results import NON_FINITE, all_finite
from recog.errors import RecogError
from recog.serve.batcher import QueueFull
from recog.serve.errors import ApiError, error_responses
from recog.serve.limits import UploadError, decode_upload
from recog.serve.schemas import PredictResponse
from recog.serve.state import ServingDep
from recog.serve.upload import read_upload
from recog.types import Selection

log = logging.getLogger("recog.serve")

#: the request body as OpenAPI sees it (FastAPI cannot infer it: the route reads the raw body)
PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictJSON"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}

router = APIRouter(tags=["predict"])


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra={"requestBody": PREDICT_BODY},
    responses=error_responses(400, 401, 404, 408, 413, 415, 422, 503, 504),
)
async def predict(
    request: Request,
    state: ServingDep,
    model: str | None = Query(
        None, max_length=200, description="model name (default: the first served)"
    ),
    top_k: int = Query(5, ge=1, le=100, description="classes to return (classification)"),
    reject: bool = Query(
        True,
        description="answer `unknown` below the run's out-of-distribution threshold "
        "(when it has one, `recog calibrate`); false: always a class",
    ),
    conf: float | None = Query(
        None,
        ge=0.0,
        le=1.0,
        description="lowest score kept: boxes (detection, instances), classes listed in top_k "
        "(classification); default the server's --conf, else 0.25 for detection, 0.5 for "
        "instances, 0 for classification",
    ),
    iou: float | None = Query(
        None,
        gt=0.0,
        le=1.0,
        description="class-aware NMS at this overlap after the model's own (default the "
        "server's --iou, else none more); detection and instances only",
    ),
    max_det: int | None = Query(
        None,
        ge=1,
        le=10_000,
        description="most boxes per image, best first (default the server's --max-det, else 100)",
    ),
) -> dict[str, Any]:
    """Recognize one image: multipart `file`, JSON `{"image": base64}`, or the raw bytes.

    The format is sniffed from the content, never from the file name.
    Limits: `max_bytes` per image (413), decoded pixels and animation
    frames (413); anything that is not a decodable image is a 4xx.
    """
    start = time.perf_counter()
    models, limits = state.models, state.config.limits
    name = state.default_model if model is None else model
    served = models.get(name)
    if served is None:
        raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(models)}")
    task = served.recognizer.task
    chosen = _selection(state.config.selection, conf=conf, iou=iou, max_det=max_det)
    try:
        task.check_selection(chosen)
    except RecogError as exc:
        # the CLI's words for the request's parameters: --max-det -> max_det
        text = str(exc).replace("--", "").replace("max-det", "max_det").replace("top-k", "top_k")
        raise ApiError(422, "invalid_option", text) from None
    data = await read_upload(request, limits)

    def decode() -> tuple[Any, Any, dict[str, Any], str]:
        decoded = decode_upload(data, limits)
        prepared, meta = task.prepare(decoded.image)
        return decoded, prepared, meta, hashlib.sha256(data).hexdigest()

    try:
        decoded, prepared, meta, sha = await run_in_threadpool(decode)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    height, width = int(decoded.image.shape[-2]), int(decoded.image.shape[-1])
    try:
        record = await asyncio.wait_for(
            served.batcher.submit(prepared, meta, top_k=top_k, reject=reject, selection=chosen),
            limits.predict_timeout_s,
        )
    except QueueFull:
        raise ApiError(503, "busy", "the model's queue is full; retry shortly") from None
    except TimeoutError:
        raise ApiError(504, "timeout", "the model did not answer in time") from None
    if not all_finite(record):  # a diverged model's NaN: no answer, no history row, no bare 500
        raise ApiError(422, "non_finite_scores", f"{NON_FINITE} for this image (NaN or inf)")
    latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
    prediction_id = uuid.uuid4().hex
    try:  # only queued: never waits for the database (store.py, writer.py)
        state.store.record(
            prediction_id=prediction_id,
            model=name,
            task=str(served.recognizer.config.task),
            image_sha256=sha,
            width=width,
            height=height,
            result=record,
            latency_ms=latency_ms,
            image=data if state.config.keep_images else None,
            media_type=decoded.media_type,
        )
    except Exception:  # the answer is still right; it just will not be in the history
        log.exception("could not queue prediction %s for the history", prediction_id)
    return {
        "id": prediction_id,
        "model": name,
        "task": str(served.recognizer.config.task),
        "image": {"sha256": sha, "width": width, "height": height},
        "result": record,
        "latency_ms": latency_ms,
    }


def _selection(defaults: dict[str, Any], **given: Any) -> Selection:
    """The request's conf, iou, max_det over the server's (`recog serve --conf ...`)."""
    return Selection(**{**defaults, **{k: v for k, v in given.items() if v is not None}})
