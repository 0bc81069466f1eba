"""The FastAPI app, assembled: models and their micro-batchers, routers, error handlers, middleware.

`create_app(recognizers, config)` builds an app around already-loaded
`Recognizer`s; `recog.serve.serve` loads runs and runs it under uvicorn.
What each part does lives in its own module: the routes in `routes/`,
reading an upload in `upload.py`, error answers in `errors.py`, metrics,
security headers, the API key and CORS in `middleware.py`, the state the
routes share in `state.py`.  Every error is `{"error", "detail"}` JSON with
a 4xx status (5xx only for overload, time-out or a bug); no response ever
carries a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from recog.api import Recognizer
from recog.errors import RecogError
from recog.serve.batcher import MicroBatcher
from recog.serve.errors import install_error_handlers
from recog.serve.metrics import ServerMetrics
from recog.serve.middleware import add_middleware, api_key_guard
from recog.serve.routes import (
    attack,
    camera,
    explain,
    history,
    models,
    page,
    predict,
    prometheus,
)
from recog.serve.schemas import PredictJSON
from recog.serve.state import ServeConfig, ServedModel, Serving, unique_names
from recog.serve.store import Store
from recog.types import Selection

__all__ = ["ServeConfig", "create_app", "unique_names"]


def create_app(
    recognizers: Mapping[str, Recognizer] | list[Recognizer],
    config: ServeConfig | None = None,
    *,
    store: Store | None = None,
    close_store: bool | None = None,
) -> FastAPI:
    """The web app serving `recognizers` (a name -> Recognizer mapping, or a list named by run).

    The app's shutdown closes the history store (writing what is still queued) when
    `close_store` says so; by default only a store it opened itself."""
    config = config or ServeConfig()
    named = dict(recognizers) if isinstance(recognizers, Mapping) else unique_names(recognizers)
    if not named:
        raise ValueError("create_app needs at least one recognizer")
    metrics = ServerMetrics()
    served: dict[str, ServedModel] = {}
    defaults = Selection(**config.selection)
    for name, rec in named.items():
        try:  # a server option that means nothing for a model: refused before serving
            rec.task.check_selection(defaults)
        except RecogError as exc:
            raise RecogError(f"{name}: {exc}") from None
        batcher = MicroBatcher(
            rec,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            observer=metrics.batch_observer(name),
        )
        info = models.model_info(name, rec, config.max_batch)
        served[name] = ServedModel(name, rec, batcher, info)
        metrics.queue_depth.labels(name).set_function(lambda b=batcher: b.depth)
    state = Serving(
        config, served, store or Store(config.db_url, queue=config.history_queue), metrics
    )
    metrics.watch_store(state.store)
    # closed in the lifespan, not after uvicorn.run returns: uvicorn ends a SIGTERM by
    # re-raising it, which would kill the process with rows still queued (CI run, stop 24)
    owns_store = store is None if close_store is None else close_store

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if config.warm_up:
            for model in served.values():
                await model.batcher.warm_up()
        yield
        for model in served.values():
            await model.batcher.close()
        if owns_store:
            state.store.close()

    app = FastAPI(
        title="recog",
        version=_version(),
        summary="Image recognition: classification, detection and segmentation models from recog runs.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page serves nothing external
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.recog = state
    app.state.recog_models = state.models
    app.state.recog_store = state.store
    app.state.recog_metrics = metrics

    install_error_handlers(app, metrics)
    protected = api_key_guard(config.api_key)
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    app.include_router(prometheus.router, dependencies=protected)
    app.include_router(models.router, dependencies=protected)
    app.include_router(predict.router, dependencies=protected)
    app.include_router(explain.router, dependencies=protected)
    app.include_router(attack.router, dependencies=protected)
    app.include_router(history.router, dependencies=protected)
    app.include_router(camera.router)  # checks the key itself: a browser socket has no headers
    add_middleware(app, metrics, config.cors_origins)
    _extend_openapi(app)
    return app


def _extend_openapi(app: FastAPI) -> None:
    """FastAPI's schema plus what it cannot see: the models the predict body refers to."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["PredictJSON"] = PredictJSON.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from recog.version import __version__

    return __version__
