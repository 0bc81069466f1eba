"""`POST /v1/explain`: one uploaded image -> heat maps of what the model's answer rests on, with their faithfulness.

The image goes through the same limits as `/v1/predict` (and the heavy
routes' pixel cap), brought to the model's size first.  Explanations run in
a worker thread under the app's gate of heavy work (`recog.serve.worker`:
503 when no slot frees up, 504 past the time-out, the work then cancelled),
one at a time per model, on a copy of the model (`ServedModel.explaining`),
so their hooks and gradients never reach the micro-batcher's forward passes.
Each map comes back as a PNG overlay (the heat map over the image the model
saw) with its deletion and insertion AUC and the random map's on the same
image.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
import time
from typing import Any

from fastapi import APIRouter, Query, Request

from recog.serve.errors import ApiError, error_responses
from recog.serve.routes.predict import PREDICT_BODY
from recog.serve.schemas import ExplainResponse
from recog.serve.state import ServingDep
from recog.serve.upload import read_upload
from recog.serve.worker import cancellable, heavy_image, in_worker

#: recog.explain.METHODS without the random baseline (every answer carries its scores)
METHODS = ("gradcam", "gradcam++", "layercam", "eigencam", "ig", "occlusion", "drise")

router = APIRouter(tags=["explain"])


def _overlay_png(prepared: Any, explanation: Any) -> str:
    from recog.explain.output import overlay

    buf = io.BytesIO()
    overlay(prepared, explanation.saliency, box=explanation.target.box).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@router.post(
    "/v1/explain",
    response_model=ExplainResponse,
    openapi_extra={"requestBody": PREDICT_BODY},
    responses=error_responses(400, 401, 404, 408, 413, 415, 422, 503, 504),
)
async def explain(
    request: Request,
    state: ServingDep,
    model: str | None = Query(
        None, max_length=200, description="model name (default: the first served)"
    ),
    method: str = Query("gradcam", description=f"one of {', '.join(METHODS)}"),
    target: str | None = Query(None, max_length=200, description="explain this class instead"),
) -> dict[str, Any]:
    """Heat maps of the model's answer on one image (per box for detection, per class
    region for segmentation), each with its faithfulness scores."""
    start = time.perf_counter()
    limits = state.config.limits
    name, served = state.served(model)
    if method not in METHODS:
        raise ApiError(422, "bad_method", f"method {method!r}: not one of {', '.join(METHODS)}")
    data = await read_upload(request, limits)

    def work(cancel: threading.Event) -> tuple[tuple[int, int], list[dict[str, Any]]]:
        image, size = heavy_image(data, limits, served.recognizer)
        with served.explain_lock:
            rec = served.explaining()
            with cancellable(rec.model, cancel):
                prepared, _ = rec.task.prepare(image)
                maps = rec.explain([image], methods=[method], target=target, steps=10)
        return size, [
            {
                "target": e.target.name,
                "label": e.target.label,
                "box": None if e.target.box is None else [float(v) for v in e.target.box],
                "overlay": _overlay_png(prepared, e),
                **{k: round(float(v), 6) for k, v in e.scores.items()},
            }
            for e in maps
        ]

    (width, height), maps = await in_worker(
        state.heavy, work, limits.predict_timeout_s, "explanation"
    )
    return {
        "model": name,
        "task": str(served.recognizer.config.task),
        "method": method,
        "image": {
            "sha256": hashlib.sha256(data).hexdigest(),
            "width": width,
            "height": height,
        },
        "maps": maps,
        "latency_ms": round((time.perf_counter() - start) * 1000.0, 3),
    }
