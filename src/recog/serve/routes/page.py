"""The routes anyone may call: the web page (`/`), its static files and liveness (`/healthz`).

`/healthz` never touches the database: it says what the history store's
writer last found (`Store.health`), so it answers at once even while the
database is down.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from recog.serve.schemas import Health, StoreHealth
from recog.serve.state import ServingDep

#: the page's files (no build step): index.html, app.js, style.css; mounted at /static
STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz(state: ServingDep) -> Health:
    """Liveness (always 200 while it answers): its models, and whether the history store is degraded."""
    store = StoreHealth(**state.store.health())
    return Health(status=store.status, models=list(state.models), store=store)
