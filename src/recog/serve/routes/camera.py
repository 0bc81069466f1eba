"""`WS /v1/camera`: live frames in, one answer per frame the model had time for, out.

The protocol, for the page's camera mode and any client:
- connect to `/v1/camera?model=NAME&conf=0.3&top_k=5&reject=true` (the same
  options and checks as `POST /v1/predict`); with an API key set on the
  server, send `X-API-Key` (or a bearer token) with the handshake, or, from a
  browser (which cannot set headers on a WebSocket), send
  `{"api_key": "..."}` as the first text message;
- send each frame as one binary message (JPEG, PNG or WebP, under the upload
  limits: a frame is read through the same door as an upload);
- receive one JSON text message per answered frame: `{"frame", "model",
  "task", "image": {"width", "height"}, "result", "latency_ms", "seq" (which
  frame received, from 1, this answers), "received", "answered", "dropped"}` (the `image` and `result` of a `/v1/predict`
  answer), or `{"frame", "error", "detail"}` for a frame that is not an image;
- a text message `{"conf": 0.5}` (or `top_k`, `reject`) changes the options
  for the frames after it.

Back-pressure (`camera.LatestFrame`): at most one frame waits; one that
arrives while the model is busy replaces it and is counted as dropped, so
the answers never lag behind the picture and a fast client costs one frame
of memory.  A client that sends nothing for `IDLE_S` seconds is closed.
Frames go through the app's micro-batcher beside uploads; they are written
to the prediction history only with `recog serve --camera-history`
(`ServeConfig.camera_history`), since a minute of camera is thousands of
frames.  Browsers send an `Origin`: a page from another site may not use
the camera socket unless `--cors-origin` names it (a WebSocket is not
covered by CORS, so the check is here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from recog.errors import RecogError
from recog.serve.batcher import QueueFull
from recog.serve.camera import LatestFrame
from recog.serve.limits import UploadError, decode_upload
from recog.serve.state import ServedModel, Serving
from recog.types import Selection

log = logging.getLogger("recog.serve")

router = APIRouter(tags=["camera"])

#: seconds without a frame before the server closes a camera connection
IDLE_S = 60.0
#: seconds a browser has to send its API key after connecting
AUTH_S = 10.0
#: the WebSocket close codes used: policy (a bad key, a foreign origin), bad option
POLICY, INVALID = 1008, 1003


class _Options:
    """The options of one camera connection, changed by `{"conf": ...}` messages."""

    def __init__(self, state: Serving, served: ServedModel, query: dict[str, str]) -> None:
        self.state, self.served = state, served
        self.top_k, self.reject = 5, True
        self.selection = Selection(**state.config.selection)
        self.update(query)

    def update(self, given: dict[str, Any]) -> None:
        """Apply `given` (query strings or JSON values); RecogError names a bad one."""
        picked: dict[str, Any] = {}
        for key, value in given.items():
            if key == "top_k":
                self.top_k = _number(key, value, int, 1, 100)
            elif key == "reject":
                self.reject = str(value).lower() not in ("false", "0", "no")
            elif key in ("conf", "iou"):
                picked[key] = _number(key, value, float, 0.0, 1.0)
            elif key == "max_det":
                picked[key] = _number(key, value, int, 1, 10_000)
            elif key not in ("model", "api_key"):
                raise RecogError(f"{key}: not a camera option (conf, iou, max_det, top_k, reject)")
        if picked:
            chosen = dataclasses.replace(self.selection, **picked)
            self.served.recognizer.task.check_selection(chosen)
            self.selection = chosen


def _number(key: str, value: Any, kind: type, low: float, high: float) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RecogError(f"{key}: {value!r} is not a number") from None
    if not low <= number <= high:
        raise RecogError(f"{key}: {value!r} is outside [{low}, {high}]")
    return number


def _origin_allowed(ws: WebSocket, allowed: tuple[str, ...]) -> bool:
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser: the API key is its guard
        return True
    if origin in allowed or "*" in allowed:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


def _key_given(ws: WebSocket) -> str | None:
    key = ws.headers.get("x-api-key")
    auth = ws.headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def _key_ok(given: Any, expected: str) -> bool:
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


@router.websocket("/v1/camera")
async def camera(ws: WebSocket) -> None:
    state: Serving = ws.app.state.recog
    if not _origin_allowed(ws, state.config.cors_origins):
        await ws.close(code=POLICY, reason="this origin may not use the camera socket")
        return
    query = dict(ws.query_params)
    await ws.accept()
    key = state.config.api_key
    if key and not _key_ok(_key_given(ws), key) and not await _key_message(ws, key):
        await ws.close(code=POLICY, reason="a valid API key is required")
        return
    try:
        name, served = state.served(query.get("model"))
        options = _Options(state, served, query)
    except RecogError as exc:
        await ws.close(code=INVALID, reason=str(exc)[:120])
        return
    except Exception as exc:  # ApiError: an unknown model
        await ws.close(code=INVALID, reason=str(getattr(exc, "message", exc))[:120])
        return
    await _session(ws, state, name, served, options)


async def _key_message(ws: WebSocket, key: str) -> bool:
    """Whether the first message, within `AUTH_S`, is `{"api_key": KEY}`."""
    try:
        text = await asyncio.wait_for(ws.receive_text(), AUTH_S)
        return _key_ok(json.loads(text).get("api_key"), key)
    except (TimeoutError, WebSocketDisconnect, ValueError, AttributeError, KeyError, RuntimeError):
        return False


async def _session(
    ws: WebSocket, state: Serving, name: str, served: ServedModel, options: _Options
) -> None:
    """Receive frames into one slot while answering the newest; ends when either side stops."""
    slot = LatestFrame()
    metrics = state.metrics.camera
    metrics.sessions.inc()
    started, answered = time.perf_counter(), 0

    async def receive() -> None:
        limit = state.config.limits.max_body
        try:
            while True:
                message = await asyncio.wait_for(ws.receive(), IDLE_S)
                if message["type"] == "websocket.disconnect":
                    return
                data, text = message.get("bytes"), message.get("text")
                if data is not None:
                    if len(data) > limit:
                        metrics.frames.labels(name, "refused").inc()
                        await _send(
                            ws,
                            {
                                "error": "too_large",
                                "detail": f"a frame of {len(data)} bytes (at most {limit})",
                            },
                        )
                        continue
                    if slot.put(data):
                        metrics.frames.labels(name, "dropped").inc()
                elif text is not None:
                    await _control(ws, options, text)
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            return
        finally:
            slot.close()

    async def answer() -> None:
        nonlocal answered
        frame = 0
        while (got := await slot.get()) is not None:
            seq, data = got
            frame += 1
            reply = await _answer(state, name, served, options, data)
            if "error" in reply:
                metrics.frames.labels(name, "refused").inc()
            else:
                answered += 1
                metrics.frames.labels(name, "answered").inc()
                metrics.latency.labels(name).observe(reply["latency_ms"] / 1000.0)
            reply.update(
                frame=frame,
                seq=seq,
                received=slot.received,
                answered=answered,
                dropped=slot.dropped,
            )
            if not await _send(ws, reply):
                return

    receiver = asyncio.create_task(receive())
    answerer = asyncio.create_task(answer())
    try:
        await asyncio.wait({receiver, answerer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        slot.close()
        for task in (receiver, answerer):
            task.cancel()
        for task in (receiver, answerer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        metrics.sessions.dec()
        with contextlib.suppress(RuntimeError):
            await ws.close()
        log.info(
            "camera session on %s: %d frames received, %d answered, %d dropped in %.0f s",
            name, slot.received, answered, slot.dropped, time.perf_counter() - started,
        )  # fmt: skip


async def _control(ws: WebSocket, options: _Options, text: str) -> None:
    try:
        given = json.loads(text)
        if not isinstance(given, dict):
            raise RecogError('a control message is a JSON object such as {"conf": 0.5}')
        options.update(given)
    except ValueError:
        await _send(ws, {"error": "invalid_option", "detail": "a control message is JSON"})
    except RecogError as exc:
        await _send(ws, {"error": "invalid_option", "detail": str(exc)})


async def _send(ws: WebSocket, reply: dict[str, Any]) -> bool:
    try:
        await ws.send_text(json.dumps(reply, allow_nan=False))
        return True
    except (WebSocketDisconnect, RuntimeError, ValueError):
        return False


async def _answer(
    state: Serving, name: str, served: ServedModel, options: _Options, data: bytes
) -> dict[str, Any]:
    """One frame's answer: the `image` and `result` of a /v1/predict reply, or an error."""
    start = time.perf_counter()
    limits, task = state.config.limits, served.recognizer.task

    def decode() -> tuple[Any, Any, dict[str, Any]]:
        decoded = decode_upload(data, limits)
        prepared, meta = task.prepare(decoded.image)
        return decoded, prepared, meta

    try:
        decoded, prepared, meta = await run_in_threadpool(decode)
        record = await asyncio.wait_for(
            served.batcher.submit(
                prepared, meta, top_k=options.top_k, reject=options.reject,
                selection=options.selection,
            ),
            limits.predict_timeout_s,
        )  # fmt: skip
    except UploadError as exc:
        return {"error": exc.code, "detail": exc.message}
    except QueueFull:
        return {"error": "busy", "detail": "the model's queue is full"}
    except TimeoutError:
        return {"error": "timeout", "detail": "the model did not answer in time"}
    height, width = int(decoded.image.shape[-2]), int(decoded.image.shape[-1])
    latency_ms = round((time.perf_counter() - start) * 1000.0, 3)
    task_name = str(served.recognizer.config.task)
    if state.config.camera_history:
        import hashlib

        state.store.record(
            prediction_id=uuid.uuid4().hex, model=name, task=task_name,
            image_sha256=hashlib.sha256(data).hexdigest(), width=width, height=height,
            result=record, latency_ms=latency_ms,
        )  # fmt: skip
    return {
        "model": name,
        "task": task_name,
        "image": {"width": width, "height": height},
        "result": record,
        "latency_ms": latency_ms,
    }
