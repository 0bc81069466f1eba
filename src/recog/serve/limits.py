"""Upload limits and safe decoding: bytes from a stranger -> a (3, H, W) uint8 RGB tensor.

The order matters: the byte cap is checked while the body is read (elsewhere,
`read_capped`), the format is sniffed from magic bytes (never the file name
or the client's content type), Pillow is told to use that format alone, and
the pixel and frame counts are read from the header and checked *before*
anything is decompressed.  A decompression bomb (a 50 KB PNG that declares
20,000 x 20,000 pixels) is therefore rejected without allocating its pixels.
Every failure is an `UploadError` carrying the HTTP status and a message for
the client; nothing from Pillow's internals reaches the response.  The caps
and the header checks are those every image read from disk meets
(`recog.data.images`: `MAX_BYTES`, `MAX_PIXELS`, `MAX_FRAMES`, `open_checked`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch

from recog.data.images import (
    MAX_BYTES,
    MAX_FRAMES,
    MAX_PIXELS,
    ImageRefused,
    byte_problem,
    open_checked,
    rgb_array,
)

#: magic bytes -> (Pillow format name, media type); checked in order
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "image/png"),
    (b"GIF87a", 0, "GIF", "image/gif"),
    (b"GIF89a", 0, "GIF", "image/gif"),
    (b"WEBP", 8, "WEBP", "image/webp"),  # after b"RIFF" + 4 size bytes
    (b"BM", 0, "BMP", "image/bmp"),
    (b"II*\x00", 0, "TIFF", "image/tiff"),
    (b"MM\x00*", 0, "TIFF", "image/tiff"),
)
SUPPORTED = "JPEG, PNG, GIF, WebP, BMP or TIFF"


class UploadError(Exception):
    """A rejected upload: `status` is the HTTP status, `code` a stable short name."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one upload may cost the server."""

    #: bytes of one image (the request body may add a little multipart framing): an upload
    #: cap below the disk one, as before the two shared a door
    max_bytes: int = min(MAX_BYTES, 10 * 1024 * 1024)
    #: decoded pixels of one frame, and of all frames an animation makes us seek through
    #: (an upload cap below the disk one: a 10 MB body may declare any size)
    max_pixels: int = min(MAX_PIXELS, 40_000_000)
    #: frames of an animation (only the first is used; more than this is refused)
    max_frames: int = MAX_FRAMES
    #: seconds to receive the request body
    read_timeout_s: float = 30.0
    #: seconds a prediction may wait for the model (queue + inference)
    predict_timeout_s: float = 30.0
    #: explanations and attacks running at once (`recog.serve.worker.HeavyGate`): one, as
    #: each already keeps every core busy (torch's threads), so a second only halves both
    heavy_slots: int = 1
    #: seconds such a request waits for a slot before its 503
    heavy_wait_s: float = 5.0
    #: decoded pixels of an image to explain or attack: 48 MB of RGB (a 16 MP phone photo)
    #: while it is brought down to the model's input
    heavy_pixels: int = 16_000_000

    @property
    def max_body(self) -> int:
        """Request body cap: the image plus room for multipart framing and base64 expansion."""
        return self.max_bytes * 4 // 3 + 64 * 1024


@dataclass(frozen=True)
class DecodedImage:
    """image: (3, H, W) uint8 RGB, EXIF orientation applied."""

    image: torch.Tensor
    format: str
    media_type: str


def sniff(data: bytes) -> tuple[str, str]:
    """(Pillow format, media type) from the first bytes, or `UploadError` 415."""
    for magic, offset, fmt, media in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            if fmt == "WEBP" and data[:4] != b"RIFF":
                continue
            return fmt, media
    raise UploadError(415, "unsupported_media", f"not a {SUPPORTED} image ({_describe(data)})")


def _describe(data: bytes) -> str:
    head = data[:512]
    if not head.strip():
        return "the content is blank"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "the content is not a known image format"
    return "the content looks like text"


def decode_upload(data: bytes, limits: Limits) -> DecodedImage:
    """Check and decode one uploaded image; raises `UploadError` (4xx) for anything unusable."""
    if not data:
        raise UploadError(400, "empty", "the upload is empty (0 bytes)")
    too_large = byte_problem(len(data), limits.max_bytes)
    if too_large:
        raise UploadError(413, "too_large", too_large)
    fmt, media = sniff(data)
    try:
        with open_checked(
            io.BytesIO(data),
            formats=[fmt],
            max_pixels=limits.max_pixels,
            max_frames=limits.max_frames,
        ) as img:
            try:
                rgb = rgb_array(img)
            except Exception as exc:
                raise UploadError(
                    422, "undecodable", f"a damaged or truncated {fmt} image (cannot decode it)"
                ) from exc
    except ImageRefused as exc:
        message = exc.message + ("; send a single frame" if exc.code == "too_many_frames" else "")
        raise UploadError(_STATUS[exc.code], exc.code, message) from exc
    return DecodedImage(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), fmt, media)


#: HTTP status of each `ImageRefused.code`
_STATUS = {"too_many_pixels": 413, "too_many_frames": 413, "bad_shape": 422, "undecodable": 422}
