"""Reading an upload: a request body, under the byte cap and the time-out, -> the image file's bytes.

Three ways to send an image, told apart by the request's content type:
multipart/form-data with a `file` field, JSON `{"image": "<base64>"}` (a
`data:` URL prefix is allowed), or the raw bytes (`image/*` or
`application/octet-stream`).  The bytes this returns are what
`limits.decode_upload` sniffs and decodes; nothing here looks inside the
image.  Every refusal is an `ApiError` with its 4xx status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from recog.serve.errors import ApiError
from recog.serve.limits import Limits


async def read_upload(request: Request, limits: Limits) -> bytes:
    """The uploaded image file's bytes, however it was sent (not yet sniffed or decoded)."""
    return await _image_bytes(request, await read_body(request, limits))


async def read_body(request: Request, limits: Limits) -> bytes:
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


async def _image_bytes(request: Request, body: bytes) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        return await _multipart_file(request, body)
    if ctype == "application/json":
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "bad_json", "the body is not valid JSON") from None
        except RecursionError:  # [[[[...]]]] 100,000 deep: the parser's stack, not ours
            raise ApiError(400, "bad_json", "the JSON body is nested too deeply") from None
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


async def _multipart_file(request: Request, body: bytes) -> bytes:
    """The `file` field of a multipart body already read (and capped) by `read_body`."""
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
        raise ApiError(400, "bad_multipart", f"malformed multipart form: {exc.detail}") from None
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
