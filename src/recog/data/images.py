"""The one door user image files are read through: decoding, header reads, finding them.

Every read of a user's image (or mask) file in recog opens it here, so the
pixel limit and the error messages are the same everywhere: `read_image`
decodes to (3, H, W) uint8 RGB, `open_image` opens for a header read or a
mode-preserving decode (masks), `image_size` reads (width, height) only.

torchvision.io decodes first (fast, libjpeg-turbo / libpng); Pillow is the
fallback for what it cannot read (CMYK and 16-bit variants, TIFF, palette
modes with transparency).  Every failure becomes a `RecogError` naming the
file.  Truncated files are errors, not silently grey-filled images.
"""

from __future__ import annotations

import glob
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image, read_file

from recog.errors import RecogError

#: suffixes of the files read as images, in the order a lookup by file stem tries them
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: what the detection readers take as images (VOC lookup by stem, YOLO image folders): no
#: GIF, as in Ultralytics' list of image formats, so a YOLO folder yields the images
#: Ultralytics would train on (a GIF is an animation there, not one labelled picture)
DETECTION_IMAGE_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s != ".gif")
# Decompression bombs: refuse images above this many pixels (about 16k x 16k).
MAX_PIXELS = 268_435_456


# Magic numbers of the formats torchvision decodes upright (JPEG, PNG; GIF has no EXIF);
# the rest (WebP, TIFF, ...) go to Pillow, which applies their EXIF orientation.
_TORCHVISION_ORIENTS = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def walk_files(folder: Path) -> list[Path]:
    """Files under `folder`, sorted, skipping hidden folders (.ipynb_checkpoints, .git)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.parent.relative_to(folder).parts)
    )


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """The file opened by Pillow (header read; pixels decode on `load()`), closed after.

    Refuses images above `MAX_PIXELS` (Pillow's own decompression-bomb check
    applies first); the caller decides what its failures mean.
    """
    with Image.open(path) as img:
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"{img.width}x{img.height} pixels is too large")
        yield img


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (no pixel decode)."""
    try:
        with open_image(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise RecogError(f"{path}: not a readable image ({exc.__class__.__name__})") from None


def _pil_decode(path: Path) -> torch.Tensor:
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with open_image(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
                arr = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
                rgb = np.repeat(arr[..., None], 3, axis=2)
            else:
                rgb = np.asarray(img.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


def _torchvision_decode(data: torch.Tensor) -> torch.Tensor | None:
    """(3, H, W) uint8 upright, or None where Pillow must try (CMYK, damaged files, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # libjpeg's "premature end of data" must not pass
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (RuntimeError, ValueError, Warning):
        return None
    if image.dtype != torch.uint8:  # 16-bit PNG
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    return image if image.shape[0] == 3 and image.numel() > 0 else None


def read_image(path: str | Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB, upright: the EXIF orientation of phone photos is applied (as the
    server does for uploads); greyscale, CMYK, 16-bit, palette and alpha are converted."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # torchvision 0.29 points to torchcodec
            data = read_file(str(path))
    except (RuntimeError, OSError) as exc:
        if not path.exists():
            raise RecogError(f"{path}: no such file") from exc
        raise RecogError(f"{path}: cannot read file ({exc})") from exc
    if data.numel() == 0:
        raise RecogError(f"{path}: empty file (0 bytes)")
    # torchvision applies EXIF orientation for JPEG and PNG only; Pillow does the rest
    if data[:4].numpy().tobytes().startswith(_TORCHVISION_ORIENTS):
        image = _torchvision_decode(data)
        if image is not None:
            return image
    try:
        return _pil_decode(path)
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as exc:
        reason = str(exc).split("\n")[0] or exc.__class__.__name__
        if isinstance(exc, UnidentifiedImageError):
            reason = "not an image format recog can read"
        raise RecogError(f"{path}: cannot decode image ({reason})") from exc


def find_images(paths: list[str]) -> list[Path]:
    """Image files named by `paths`: files, folders (recursive, sorted) and shell globs."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found += [p for p in walk_files(path) if is_image_file(p)]
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(item):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            files = [p for p in matches if p.is_file() and is_image_file(p)]
            if not files:
                raise RecogError(f"{item}: matches no image files")
            found += files
        else:
            raise RecogError(f"{item}: no such file or directory")
    if not found:
        raise RecogError(f"{' '.join(paths)}: no image files found")
    return found
