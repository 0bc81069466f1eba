"""`POST /v1/feedback` (a user's correction of one prediction) and `GET /v1/history`.

A correction names classes of the model that made the prediction and boxes
`[x1, y1, x2, y2]` with positive area; the newest correction of a
prediction is the one that counts (`store.py`, and `export.py` when the
corrections become a training set).  While the history database does not
answer, both are a 503 (`store_unavailable`); feedback on a prediction that
is still queued for writing is a 503 `not_recorded_yet` (retry shortly).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from recog.serve.errors import ApiError, error_responses
from recog.serve.schemas import Feedback, FeedbackRequest, HistoryResponse
from recog.serve.state import ServingDep

router = APIRouter(tags=["history"])


@router.post(
    "/v1/feedback",
    response_model=Feedback,
    response_model_exclude_none=True,
    responses=error_responses(401, 404, 422, 503),
)
async def feedback(body: FeedbackRequest, state: ServingDep) -> dict[str, Any]:
    """Correct a prediction: the right `label` (classification) or `boxes` (detection)."""
    if body.label is None and body.boxes is None:
        raise ApiError(422, "invalid_request", "give the right `label` or the right `boxes`")
    history = state.store
    found = await run_in_threadpool(history.prediction, body.prediction_id)
    if found is None:
        raise ApiError(404, "unknown_prediction", f"no prediction {body.prediction_id!r}")
    served = state.models.get(found["model"])
    classes = set(served.recognizer.class_names) if served else None
    names = [body.label] if body.label is not None else []
    names += [b.label for b in body.boxes or []]
    if classes is not None:
        unknown = sorted({n for n in names if n not in classes})
        if unknown:
            raise ApiError(
                422,
                "unknown_label",
                f"not a class of {found['model']}: {', '.join(unknown)[:200]}",
            )
    for b in body.boxes or []:
        x1, y1, x2, y2 = b.box
        if not all(map(math.isfinite, b.box)) or x2 <= x1 or y2 <= y1:
            raise ApiError(
                422, "invalid_box", "boxes are [x1, y1, x2, y2] with x2 > x1 and y2 > y1"
            )
    stored = await run_in_threadpool(
        lambda: history.add_feedback(
            body.prediction_id,
            label=body.label,
            boxes=None if body.boxes is None else [b.model_dump() for b in body.boxes],
            comment=body.comment,
        )
    )
    if stored is None:
        raise ApiError(404, "unknown_prediction", f"no prediction {body.prediction_id!r}")
    return stored


@router.get(
    "/v1/history",
    response_model=HistoryResponse,
    response_model_exclude_none=True,
    responses=error_responses(401, 422, 503),
)
async def get_history(
    state: ServingDep,
    limit: int = Query(50, ge=1, le=500),
    model: str | None = Query(None, max_length=200),
    before: str | None = Query(
        None, max_length=64, description="a prediction id: items older than it"
    ),
) -> dict[str, Any]:
    """Recent predictions, newest first, with their latest feedback."""
    items = await run_in_threadpool(
        lambda: state.store.history(limit=limit, model=model, before=before)
    )
    return {"items": items}
