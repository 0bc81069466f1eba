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
from recog.serve.limits import DecodedImage, Limits, UploadError, decode_upload
from recog.serve.schemas import PredictResponse
from recog.serve.state import ServedModel, Serving, ServingDep
from recog.serve.upload import read_upload
from recog.tasks.base import Task
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
    name, served, chosen = _model_and_selection(state, model, conf=conf, iou=iou, max_det=max_det)
    limits = state.config.limits
    data = await read_upload(request, limits)
    decoded, prepared, meta, sha = await _decode(data, limits, served.recognizer.task)
    height, width = int(decoded.image.shape[-2]), int(decoded.image.shape[-1])
    options = {"top_k": top_k, "reject": reject, "selection": chosen}
    record = await _answer(served, prepared, meta, limits, options)
    latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
    prediction_id = uuid.uuid4().hex
    task = str(served.recognizer.config.task)
    image = {"sha256": sha, "width": width, "height": height}
    _remember(state, prediction_id, name, task, data, decoded, record, latency_ms, image)
    return {
        "id": prediction_id,
        "model": name,
        "task": task,
        "image": image,
        "result": record,
        "latency_ms": latency_ms,
    }


def _remember(
    state: Serving, prediction_id: str, model: str, task: str, data: bytes,
    decoded: DecodedImage, record: dict[str, Any], latency_ms: float, image: dict[str, Any],
) -> None:  # fmt: skip
    """Queues the answer for the history; only queued: it never waits for the database
    (store.py, writer.py)."""
    try:
        state.store.record(
            prediction_id=prediction_id,
            model=model,
            task=task,
            image_sha256=image["sha256"],
            width=image["width"],
            height=image["height"],
            result=record,
            latency_ms=latency_ms,
            image=data if state.config.keep_images else None,
            media_type=decoded.media_type,
        )
    except Exception:  # the answer is still right; it just will not be in the history
        log.exception("could not queue prediction %s for the history", prediction_id)


def _model_and_selection(
    state: Serving, model: str | None, **given: Any
) -> tuple[str, ServedModel, Selection]:
    """The served model the request names (404 when none) and its selection (422 when the
    task refuses it)."""
    models = state.models
    name = state.default_model if model is None else model
    served = models.get(name)
    if served is None:
        raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(models)}")
    chosen = _selection(state.config.selection, **given)
    try:
        served.recognizer.task.check_selection(chosen)
    except RecogError as exc:
        # the CLI's words for the request's parameters: --max-det -> max_det
        text = str(exc).replace("--", "").replace("max-det", "max_det").replace("top-k", "top_k")
        raise ApiError(422, "invalid_option", text) from None
    return name, served, chosen


async def _decode(
    data: bytes, limits: Limits, task: Task
) -> tuple[DecodedImage, Any, dict[str, Any], str]:
    """The upload sniffed, decoded and prepared for the model, and its sha256, in a worker
    thread; an upload that is not a decodable image within the limits is its 4xx."""

    def decode() -> tuple[DecodedImage, Any, dict[str, Any], str]:
        decoded = decode_upload(data, limits)
        prepared, meta = task.prepare(decoded.image)
        return decoded, prepared, meta, hashlib.sha256(data).hexdigest()

    try:
        return await run_in_threadpool(decode)
    except UploadError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None


async def _answer(
    served: ServedModel, prepared: Any, meta: dict[str, Any], limits: Limits, options: dict
) -> dict[str, Any]:
    """The model's answer through its micro-batcher (`options`: top_k, reject, selection):
    503 when its queue is full, 504 when it does not answer in time, 422 for a diverged
    model's NaN (no answer, no history row)."""
    try:
        record = await asyncio.wait_for(
            served.batcher.submit(prepared, meta, **options),
            limits.predict_timeout_s,
        )
    except QueueFull:
        raise ApiError(503, "busy", "the model's queue is full; retry shortly") from None
    except TimeoutError:
        raise ApiError(504, "timeout", "the model did not answer in time") from None
    if not all_finite(record):
        raise ApiError(422, "non_finite_scores", f"{NON_FINITE} for this image (NaN or inf)")
    return record


def _selection(defaults: dict[str, Any], **given: Any) -> Selection:
    """The request's conf, iou, max_det over the server's (`recog serve --conf ...`)."""
    return Selection(**{**defaults, **{k: v for k, v in given.items() if v is not None}})
