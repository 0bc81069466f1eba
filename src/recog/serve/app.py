"""The FastAPI app: routes, errors, auth, metrics middleware and the static page (one app object; splitting routes from it is the next step).

`create_app(recognizers, config)` builds an app around already-loaded
`Recognizer`s; `recog.serve.serve` loads runs and runs it under uvicorn.
Request handling for a prediction: read the body under a byte cap and a
time-out, sniff and decode the image in a worker thread (`limits.py`),
prepare it for the model, queue it on the model's micro-batcher, record the
answer in the history store, reply.  Every error is `{"error", "detail"}`
JSON with a 4xx status (5xx only for overload, time-out or a bug); no
response ever carries a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import math
import secrets
import time
import uuid
from collections.abc import Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recog.api import Recognizer
from recog.serve.batcher import MicroBatcher, QueueFull
from recog.serve.limits import Limits, UploadError, decode_upload
from recog.serve.metrics import ServerMetrics
from recog.serve.schemas import (
    ErrorResponse,
    Feedback,
    FeedbackRequest,
    Health,
    HistoryResponse,
    ModelInfo,
    ModelsResponse,
    PredictJSON,
    PredictResponse,
)
from recog.serve.store import DEFAULT_DB_URL, Store

log = logging.getLogger("recog.serve")
STATIC = Path(__file__).resolve().parent / "static"


class ApiError(Exception):
    """An error answer: HTTP status, short code, message for people."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class ServeConfig:
    max_batch: int = 16
    max_wait_ms: float = 5.0
    max_queue: int = 256
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    keep_images: bool = False
    db_url: str = DEFAULT_DB_URL
    limits: Limits = field(default_factory=Limits)
    warm_up: bool = True


@dataclass
class ServedModel:
    name: str
    recognizer: Recognizer
    batcher: MicroBatcher
    info: ModelInfo


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


def _model_info(name: str, rec: Recognizer, max_batch: int) -> ModelInfo:
    metrics: dict[str, float] = {}
    path = rec.run_dir / "metrics.json"
    try:
        raw = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        raw = {}
    for key, value in raw.items() if isinstance(raw, dict) else ():
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[key] = float(value)
    return ModelInfo(
        name=name,
        task=str(rec.config.task),
        architecture=str(rec.config.model),
        classes=list(rec.class_names),
        input_size=rec.img_size,
        metrics=metrics,
        max_batch=max_batch,
    )


def unique_names(recognizers: list[Recognizer]) -> dict[str, Recognizer]:
    """Model names users type: the run directory's name, made unique with its parent's."""
    out: dict[str, Recognizer] = {}
    for rec in recognizers:
        name = rec.run_dir.name
        if name in out:
            name = f"{rec.run_dir.parent.name}-{name}"
        base, n = name, 1
        while name in out:
            n += 1
            name = f"{base}-{n}"
        out[name] = rec
    return out


# ------------------------------------------------------------------ middleware
class _Observe:
    """Pure-ASGI middleware: request metrics and security headers on every response."""

    _HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data: blob:; script-src 'self'; "
            b"style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ]

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = list(message.get("headers", [])) + self._HEADERS
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - start)


# ------------------------------------------------------------------ body reading
async def _read_body(request: Request, limits: Limits) -> bytes:
    """The request body, at most `limits.max_body` bytes, within `limits.read_timeout_s`."""
    cap = limits.max_body
    drain = max(4 * cap, 64 * 1024 * 1024)
    declared = request.headers.get("content-length", "")
    too_large = ApiError(
        413,
        "too_large",
        f"the request is larger than the {limits.max_bytes:,}-byte image limit",
    )
    if declared.isdigit() and int(declared) > drain:
        raise too_large
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > drain:
                break
            if size <= cap:
                chunks.append(chunk)
            else:  # keep reading (and dropping) so the client gets its 413, not a reset
                chunks.clear()

    try:
        await asyncio.wait_for(collect(), limits.read_timeout_s)
    except TimeoutError:
        raise ApiError(408, "timeout", "the upload took too long") from None
    if size > cap:
        raise too_large
    return b"".join(chunks)


def _b64(text: str) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", "`image` is not valid base64") from None


async def _image_bytes(request: Request, body: bytes, limits: Limits) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, replay).form(
                max_files=1, max_fields=8, max_part_size=64 * 1024
            )
        except StarletteHTTPException as exc:
            raise ApiError(
                400, "bad_multipart", f"malformed multipart form: {exc.detail}"
            ) from None
        except Exception:
            raise ApiError(400, "bad_multipart", "malformed multipart form") from None
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    400, "missing_file", "the multipart form has no `file` field with an image"
                )
            return await upload.read()
        finally:
            await form.close()
    if ctype == "application/json":
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "bad_json", "the body is not valid JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("image"), str):
            raise ApiError(
                400, "missing_image", 'the JSON body needs {"image": "<base64 image>"}'
            ) from None
        return _b64(payload["image"])
    if ctype == "application/octet-stream" or ctype.startswith("image/"):
        return body
    raise ApiError(
        415,
        "unsupported_media",
        'send multipart/form-data with a `file` field, JSON {"image": base64}, '
        "or the raw image bytes",
    )


_PREDICT_BODY = {
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


# ------------------------------------------------------------------ the app
def create_app(
    recognizers: Mapping[str, Recognizer] | list[Recognizer],
    config: ServeConfig | None = None,
    *,
    store: Store | None = None,
) -> FastAPI:
    """The web app serving `recognizers` (a name -> Recognizer mapping, or a list named by run)."""
    config = config or ServeConfig()
    named = dict(recognizers) if isinstance(recognizers, Mapping) else unique_names(recognizers)
    if not named:
        raise ValueError("create_app needs at least one recognizer")
    limits = config.limits
    metrics = ServerMetrics()
    models: dict[str, ServedModel] = {}
    for name, rec in named.items():
        batcher = MicroBatcher(
            rec,
            max_batch=config.max_batch,
            max_wait_ms=config.max_wait_ms,
            max_queue=config.max_queue,
            observer=metrics.batch_observer(name),
        )
        models[name] = ServedModel(name, rec, batcher, _model_info(name, rec, config.max_batch))
        metrics.queue_depth.labels(name).set_function(lambda b=batcher: b.depth)
    default_model = next(iter(models))
    history = store or Store(config.db_url)
    owns_store = store is None

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        if config.warm_up:
            for served in models.values():
                await served.batcher.warm_up()
        yield
        for served in models.values():
            await served.batcher.close()
        if owns_store:
            history.close()

    app = FastAPI(
        title="recog",
        version=_version(),
        summary="Image recognition: classification, detection and segmentation models from recog runs.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page serves nothing external
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.recog_models = models
    app.state.recog_store = history
    app.state.recog_metrics = metrics

    protected: list[Any] = []
    if config.api_key:
        key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
        bearer = HTTPBearer(auto_error=False)
        expected = config.api_key.encode()

        async def require_key(
            key: str | None = Security(key_header),
            token: HTTPAuthorizationCredentials | None = Security(bearer),
        ) -> None:
            given = key or (token.credentials if token else None)
            if given is None or not secrets.compare_digest(given.encode(), expected):
                raise ApiError(401, "unauthorized", "a valid API key is required (X-API-Key)")

        protected = [Security(require_key)]

    # -------------------------------------------------------------- errors
    def error(request: Request, status: int, code: str, detail: str) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.errors.labels(route, code).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(request, exc.status, exc.code, exc.detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else e.get("msg", ""))
        return error(request, 422, "invalid_request", "; ".join(parts) or "invalid request")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return error(request, 500, "internal", "internal server error")

    # -------------------------------------------------------------- routes
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness: the server answers and its models are loaded."""
        return Health(status="ok", models=list(models))

    @app.get(
        "/metrics",
        tags=["service"],
        dependencies=protected,
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            **_errors(401),
        },
    )
    async def prometheus() -> Response:
        """Prometheus text: requests, latency, batch sizes, inference time, queue depth, errors."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get(
        "/v1/models",
        response_model=ModelsResponse,
        tags=["models"],
        dependencies=protected,
        responses=_errors(401),
    )
    async def list_models() -> ModelsResponse:
        """The served models: name, task, classes, input size and validation metrics."""
        return ModelsResponse(models=[m.info for m in models.values()])

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        tags=["predict"],
        dependencies=protected,
        openapi_extra={"requestBody": _PREDICT_BODY},
        responses=_errors(400, 401, 404, 408, 413, 415, 422, 503, 504),
    )
    async def predict(
        request: Request,
        model: str | None = Query(
            None, max_length=200, description="model name (default: the first served)"
        ),
        top_k: int = Query(5, ge=1, le=100, description="classes to return (classification)"),
    ) -> dict[str, Any]:
        """Recognize one image: multipart `file`, JSON `{"image": base64}`, or the raw bytes.

        The format is sniffed from the content, never from the file name.
        Limits: `max_bytes` per image (413), decoded pixels and animation
        frames (413); anything that is not a decodable image is a 4xx.
        """
        start = time.perf_counter()
        name = default_model if model is None else model
        served = models.get(name)
        if served is None:
            raise ApiError(404, "unknown_model", f"no model {name!r}; served: {', '.join(models)}")
        body = await _read_body(request, limits)
        data = await _image_bytes(request, body, limits)
        del body
        task = served.recognizer.task

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
                served.batcher.submit(prepared, meta, top_k=top_k), limits.predict_timeout_s
            )
        except QueueFull:
            raise ApiError(503, "busy", "the model's queue is full; retry shortly") from None
        except TimeoutError:
            raise ApiError(504, "timeout", "the model did not answer in time") from None
        latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
        prediction_id = uuid.uuid4().hex
        try:
            await run_in_threadpool(
                history.record,
                prediction_id=prediction_id,
                model=name,
                task=str(served.recognizer.config.task),
                image_sha256=sha,
                width=width,
                height=height,
                result=record,
                latency_ms=latency_ms,
                image=data if config.keep_images else None,
                media_type=decoded.media_type,
            )
        except Exception:  # the answer is still right; it just will not be in the history
            log.exception("could not record prediction %s", prediction_id)
        return {
            "id": prediction_id,
            "model": name,
            "task": str(served.recognizer.config.task),
            "image": {"sha256": sha, "width": width, "height": height},
            "result": record,
            "latency_ms": latency_ms,
        }

    @app.post(
        "/v1/feedback",
        response_model=Feedback,
        response_model_exclude_none=True,
        tags=["history"],
        dependencies=protected,
        responses=_errors(401, 404, 422),
    )
    async def feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Correct a prediction: the right `label` (classification) or `boxes` (detection)."""
        if body.label is None and body.boxes is None:
            raise ApiError(422, "invalid_request", "give the right `label` or the right `boxes`")
        found = await run_in_threadpool(history.prediction, body.prediction_id)
        if found is None:
            raise ApiError(404, "unknown_prediction", f"no prediction {body.prediction_id!r}")
        served = models.get(found["model"])
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

    @app.get(
        "/v1/history",
        response_model=HistoryResponse,
        response_model_exclude_none=True,
        tags=["history"],
        dependencies=protected,
        responses=_errors(401, 422),
    )
    async def get_history(
        limit: int = Query(50, ge=1, le=500),
        model: str | None = Query(None, max_length=200),
        before: str | None = Query(
            None, max_length=64, description="a prediction id: items older than it"
        ),
    ) -> dict[str, Any]:
        """Recent predictions, newest first, with their latest feedback."""
        items = await run_in_threadpool(
            lambda: history.history(limit=limit, model=model, before=before)
        )
        return {"items": items}

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
        )
    app.add_middleware(_Observe, metrics=metrics)
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
