"""The routes anyone may call: the web page (`/`), its static files and liveness (`/healthz`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from recog.serve.schemas import Health
from recog.serve.state import ServingDep

#: the page's files (no build step): index.html, app.js, style.css; mounted at /static
STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz(state: ServingDep) -> Health:
    """Liveness: the server answers and its models are loaded."""
    return Health(status="ok", models=list(state.models))
