"""One read of every image a dataset holds: content hash, header facts, perceptual hashes, thumbnail.

Each file goes through the one door (`recog.data.images.open_image`: the byte,
pixel and frame limits first), is hashed whole (SHA-256 of its bytes: exact
duplicates), and is decoded once at reduced size (Pillow's JPEG `draft`
decodes at 1/2..1/8 scale, the perceptual hashes need 32 px) for imagehash's
pHash and dHash and a small JPEG thumbnail the report shows.  A file that
cannot be read or decoded becomes a `Scan` with `problem` set; it is a finding,
never a crash.  Two threads: Pillow releases the GIL while it decodes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from recog.data.images import open_image
from recog.errors import RecogError

#: the side images are decoded at for hashing (pHash resizes to 32 px; 256 keeps small crops
#: and re-encodings from moving low frequencies) and the report's thumbnail side
HASH_SIDE = 256
THUMB_SIDE = 160


@dataclass
class Scan:
    path: Path
    sha256: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    phash: np.ndarray | None = None  # (64,) bool
    dhash: np.ndarray | None = None  # (64,) bool
    thumb: bytes = b""  # a JPEG of at most THUMB_SIDE px
    problem: str = ""  # why it could not be read, when it could not


def _decode_small(img: Image.Image) -> Image.Image:
    img.draft("RGB", (HASH_SIDE, HASH_SIDE))  # JPEG: decode at reduced scale (no-op otherwise)
    img.load()
    img = ImageOps.exif_transpose(img)
    img = img.convert("RGB")
    img.thumbnail((HASH_SIDE, HASH_SIDE), Image.Resampling.BILINEAR)
    return img


def scan_file(path: Path) -> Scan:
    import imagehash

    out = Scan(Path(path))
    try:
        with open_image(path) as img:
            out.width, out.height = img.size
            out.mode = img.mode
            data = Path(path).read_bytes()
            out.sha256 = hashlib.sha256(data).hexdigest()
            small = _decode_small(img)
    except RecogError as exc:
        out.problem = str(exc).removeprefix(f"{path}: ")
        return out
    except Exception as exc:  # noqa: BLE001 - any decoder failure is an unreadable image
        out.problem = f"cannot decode image ({exc.__class__.__name__}: {exc})"[:200]
        return out
    out.phash = imagehash.phash(small).hash.reshape(-1)
    out.dhash = imagehash.dhash(small).hash.reshape(-1)
    thumb = small.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=80)
    out.thumb = buf.getvalue()
    return out


def scan_files(
    paths: Sequence[Path], *, progress: Callable[[int], None] | None = None, threads: int = 2
) -> list[Scan]:
    """`scan_file` of every path, in order."""
    results: list[Scan] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for scan in pool.map(scan_file, paths):
            results.append(scan)
            if progress is not None:
                progress(1)
    return results
