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

from typing import Any

from fastapi import APIRouter, Query, Request

from recog.serve.errors import ApiError
from recog.serve.routes.heavy import HEAVY_ROUTE, model_query, on_explaining_copy, png_url
from recog.serve.schemas import ExplainResponse
from recog.serve.state import ServingDep

#: recog.explain.METHODS without the random baseline (every answer carries its scores)
METHODS = ("gradcam", "gradcam++", "layercam", "eigencam", "ig", "occlusion", "drise")

router = APIRouter(tags=["explain"])


def _overlay_png(prepared: Any, explanation: Any) -> str:
    from recog.explain.output import overlay

    return png_url(overlay(prepared, explanation.saliency, box=explanation.target.box))


@router.post("/v1/explain", response_model=ExplainResponse, **HEAVY_ROUTE)
async def explain(
    request: Request,
    state: ServingDep,
    model: str | None = model_query(),
    method: str = Query("gradcam", description=f"one of {', '.join(METHODS)}"),
    target: str | None = Query(None, max_length=200, description="explain this class instead"),
) -> dict[str, Any]:
    """Heat maps of the model's answer on one image (per box for detection, per class
    region for segmentation), each with its faithfulness scores."""

    def check() -> None:
        if method not in METHODS:
            raise ApiError(422, "bad_method", f"method {method!r}: not one of {', '.join(METHODS)}")

    def job(rec: Any, image: Any) -> dict[str, Any]:
        prepared, _ = rec.task.prepare(image)
        maps = rec.explain([image], methods=[method], target=target, steps=10)
        return {
            "maps": [
                {
                    "target": e.target.name,
                    "label": e.target.label,
                    "box": None if e.target.box is None else [float(v) for v in e.target.box],
                    "overlay": _overlay_png(prepared, e),
                    **{k: round(float(v), 6) for k, v in e.scores.items()},
                }
                for e in maps
            ]
        }

    return await on_explaining_copy(
        request, state, model, job, what="explanation", check=check, method=method
    )
