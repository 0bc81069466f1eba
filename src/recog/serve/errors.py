"""Error answers: `ApiError`, the handlers that turn every failure into `{"error", "detail"}` JSON.

A route raises `ApiError(status, code, detail)`; FastAPI's own 404/405 and
validation errors and any unexpected exception are answered in the same
shape, counted in `recog_errors_total` by route and code, and never carry a
traceback (a bug is logged to the "recog.serve" logger and answered with a
bare 500).  `error_responses` documents those answers in the OpenAPI schema.  A history
read the database cannot answer (`StoreUnavailable`) is a 503 with its code.

A bug is answered by `_CatchBugs`, inside the app, not by Starlette's
outermost `ServerErrorMiddleware`: that one answers too but then re-raises,
and uvicorn drops the client's keep-alive connection without a word (the
next request on it is a broken pipe).  `HttpMiddleware` is the pure-ASGI base it
shares with `recog.serve.middleware.Observe`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recog.serve.metrics import ServerMetrics
from recog.serve.schemas import ErrorResponse
from recog.serve.store import StoreUnavailable

log = logging.getLogger("recog.serve")


class ApiError(Exception):
    """An error answer: HTTP status, short code, message for people (and its headers:
    Retry-After on a 503)."""

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route that may answer with these error statuses."""
    return {code: {"model": ErrorResponse} for code in codes}


def install_error_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Answer every error of `app` as `{"error", "detail"}` JSON and count it in `metrics`."""

    def error(
        request: Request, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> JSONResponse:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.errors.labels(route, code).inc()
        headers = dict(headers or {}) | ({"WWW-Authenticate": "Bearer"} if status == 401 else {})
        return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error(request, exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(StoreUnavailable)
    async def _store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return error(request, 503, exc.code, str(exc))

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
        log.exception("unhandled error on %s", request.url.path, exc_info=exc)
        return error(request, 500, "internal", "internal server error")

    app.add_middleware(_CatchBugs, answer=_bug)


class HttpMiddleware:
    """Pure ASGI: `http` sees each HTTP request; websockets and lifespan pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class _CatchBugs(HttpMiddleware):
    """An exception no handler answered becomes `answer`'s response here."""

    def __init__(self, app: ASGIApp, answer: Any) -> None:
        super().__init__(app)
        self.answer = answer

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: only the server can end it
                raise
            response = await self.answer(Request(scope), exc)
            await response(scope, receive, send)
