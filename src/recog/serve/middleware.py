"""What wraps every route: request metrics and security headers (`Observe`), the API key, CORS.

`Observe` is pure ASGI (no buffering of bodies): it counts each request by
method, route and status, times it, and adds the security headers (a
content security policy that lets the page load nothing from elsewhere).
`api_key_guard` is the dependency list a protected router is included with:
empty when the server has no key, else a check of `X-API-Key` or a bearer
token in constant time.  CORS is added only for the origins asked for.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from fastapi import FastAPI, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recog.serve.errors import ApiError, HttpMiddleware
from recog.serve.metrics import ServerMetrics


class Observe(HttpMiddleware):
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
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
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


def api_key_guard(api_key: str | None) -> list[Any]:
    """The dependencies of a protected route: none without a key, else the key check."""
    if not api_key:
        return []
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)
    bearer = HTTPBearer(auto_error=False)
    expected = api_key.encode()

    async def require_key(
        key: str | None = Security(key_header),
        token: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> None:
        given = key or (token.credentials if token else None)
        if given is None or not secrets.compare_digest(given.encode(), expected):
            raise ApiError(401, "unauthorized", "a valid API key is required (X-API-Key)")

    return [Security(require_key)]


def add_middleware(app: FastAPI, metrics: ServerMetrics, cors_origins: tuple[str, ...]) -> None:
    """CORS (only for `cors_origins`) inside `Observe`, so preflights are counted too."""
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key", "Authorization"],
        )
    app.add_middleware(Observe, metrics=metrics)
