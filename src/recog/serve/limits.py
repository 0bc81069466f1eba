"""Upload limits and safe decoding: bytes from a stranger -> a (3, H, W) uint8 RGB tensor.

The order matters: the byte cap is checked while the body is read (elsewhere,
`read_capped`), the format is sniffed from magic bytes (never the file name
or the client's content type), Pillow is told to use that format alone, and
the pixel and frame counts are read from the header and checked *before*
anything is decompressed.  A decompression bomb (a 50 KB PNG that declares
20,000 x 20,000 pixels) is therefore rejected without allocating its pixels.
Every failure is an `UploadError` carrying the HTTP status and a message for
the client; nothing from Pillow's internals reaches the response.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

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

    #: bytes of one image (the request body may add a little multipart framing)
    max_bytes: int = 10 * 1024 * 1024
    #: decoded pixels of one frame, and of all frames an animation makes us seek through
    max_pixels: int = 40_000_000
    #: frames of an animation (only the first is used; more than this is refused)
    max_frames: int = 100
    #: seconds to receive the request body
    read_timeout_s: float = 30.0
    #: seconds a prediction may wait for the model (queue + inference)
    predict_timeout_s: float = 30.0

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
    if len(data) > limits.max_bytes:
        raise UploadError(
            413, "too_large", f"the image is {len(data):,} bytes; the limit is {limits.max_bytes:,}"
        )
    fmt, media = sniff(data)
    with warnings.catch_warnings():
        # Pillow warns (and later raises) on its own bomb limit; ours is checked first
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise UploadError(413, "too_many_pixels", "the image has too many pixels") from exc
        except Exception as exc:  # Pillow raises many types for a damaged header
            raise UploadError(
                422, "undecodable", f"a damaged or incomplete {fmt} image (cannot read its header)"
            ) from exc
        with img:
            _check_size(img, fmt, limits)
            try:
                rgb = _to_rgb(img)
            except UploadError:
                raise
            except Exception as exc:
                raise UploadError(
                    422, "undecodable", f"a damaged or truncated {fmt} image (cannot decode it)"
                ) from exc
    return DecodedImage(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), fmt, media)


def _check_size(img: Image.Image, fmt: str, limits: Limits) -> None:
    width, height = img.size
    if width < 1 or height < 1:
        raise UploadError(422, "undecodable", f"the {fmt} image has no pixels ({width}x{height})")
    pixels = width * height
    if pixels > limits.max_pixels:
        raise UploadError(
            413,
            "too_many_pixels",
            f"the image is {width}x{height} = {pixels:,} pixels; the limit is {limits.max_pixels:,}",
        )
    if getattr(img, "is_animated", False):
        # Seeking decodes frames, so the frames we are willing to walk are bounded
        # by the pixel budget as well as by the frame cap.
        budget = min(limits.max_frames, max(1, limits.max_pixels // pixels))
        try:
            img.seek(budget)
        except EOFError:
            img.seek(0)
            return
        except Exception as exc:
            raise UploadError(
                422, "undecodable", f"a damaged {fmt} animation (cannot read its frames)"
            ) from exc
        raise UploadError(
            413,
            "too_many_frames",
            f"the {fmt} animation has more than {budget} frames of {width}x{height}; "
            f"send a single frame",
        )


def _to_rgb(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8; 16-bit and float greyscale are scaled, palette and alpha converted."""
    img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.array(img.convert("RGB"), dtype=np.uint8)
