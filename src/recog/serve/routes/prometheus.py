"""`GET /metrics`: the server's Prometheus text (what `recog.serve.metrics` collects)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from recog.serve.errors import error_responses
from recog.serve.state import ServingDep

router = APIRouter(tags=["service"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401),
    },
)
async def prometheus(state: ServingDep) -> Response:
    """Prometheus text: requests, latency, batch sizes, inference time, queue depth, errors."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
