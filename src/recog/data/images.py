"""The one door user image files are read through: limits, decoding (whole or scaled), header reads, finding them (one job: every read of a user's image passes the same limits and errors, so they live together).

Every read of a user's image (or mask) file in recog opens it here, so the
limits and the error messages are the same everywhere: `read_image`
decodes to (3, H, W) uint8 RGB, `open_image` opens for a header read or a
mode-preserving decode (masks), `image_size` reads (width, height) only,
`unreadable` is the cheap check loaders run over a dataset before training
and `undecodable` the full decode `recog data check` runs.  `read_decoded`
decodes for prediction: a JPEG at 1/2, 1/4 or 1/8 of its size where the
consumer needs no more (`Task.decode_size`), with the whole image's size kept.

Limits (the same as an upload's: `recog.serve.limits.Limits` takes its
defaults from here): the file's size is checked before it is read, and the
pixel and frame counts are read from the header (Pillow's `Image.open` is
lazy) before anything is decompressed, so a 74-byte PNG declaring
100,000 x 100,000 pixels costs nothing (torchvision alone would try to
allocate 30 GB).  Then torchvision.io decodes JPEGs (libjpeg-turbo) and
Pillow everything else, and what torchvision cannot read (CMYK, damaged
files): 16-bit and palette images, TIFF, WebP.  Every failure becomes a
`RecogError` naming the file.  Truncated files are errors, not silently
grey-filled images.

Paths: `confine` says a path an annotation (or a listing) names lies inside
its dataset's root once `..` and symbolic links are resolved.
"""

from __future__ import annotations

import glob
import io
import os
import re
import stat
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image

from recog.console import progress_bar, warn
from recog.errors import RecogError

#: suffixes of the files read as images, in the order a lookup by file stem tries them
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: what the detection readers take as images (VOC lookup by stem, YOLO image folders): no
#: GIF, as in Ultralytics' list of image formats, so a YOLO folder yields the images
#: Ultralytics would train on (a GIF is an animation there, not one labelled picture)
DETECTION_IMAGE_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s != ".gif")

# What one image may cost, on disk as in an upload (recog.serve.limits.Limits' defaults;
# a server may set lower ones).  Sized so that real photos pass and bombs do not: a 108 MP
# phone photo (12,000 x 9,000) is 108 M pixels and 10-40 MB as JPEG; 20,000 x 20,000
# (400 M pixels, 1.2 GB decoded) is refused, as Pillow refuses past 179 M.
#: bytes of one image file
MAX_BYTES = 64 * 1024 * 1024
#: decoded pixels of one frame, and of all frames an animation makes us seek through
MAX_PIXELS = 120_000_000
#: frames of an animation (only the first is used; more than this is refused)
MAX_FRAMES = 100
#: pixels on one side: JPEG's own maximum (WebP's is 16,383); no camera or scanner writes more
MAX_SIDE = 65535
#: the longer side over the shorter: resizing to a model's input scales the short side up to
#: it, so a 39,000,000 x 1 strip under the pixel cap would become 120 GB of pixels; at 64:1 a
#: 512 px short side stays under 17 M pixels, and panoramas (4:1 to 10:1) pass
MAX_ASPECT = 64

# torchvision decodes JPEG (libjpeg-turbo, upright with its EXIF orientation); everything
# else goes to Pillow.  Not PNG: torchvision 0.29's libpng decoder crashes the process
# (SIGSEGV after "libpng error: Not enough image data") on a PNG whose IDAT is empty.
_TORCHVISION_MAGIC = b"\xff\xd8\xff"


class ImageRefused(Exception):
    """An image over a limit or with an unreadable header, before any pixel is decoded.

    `code` is the server's stable short name (`too_large`, `too_many_pixels`,
    `too_many_frames`, `bad_shape`, `undecodable`); `message` names no file (callers add it).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def byte_problem(size: int, max_bytes: int = MAX_BYTES) -> str | None:
    """Why an image of `size` bytes is refused, or None."""
    if size > max_bytes:
        return f"the image is {size:,} bytes; the limit is {max_bytes:,}"
    return None


def check_header(
    img: Image.Image, *, max_pixels: int = MAX_PIXELS, max_frames: int = MAX_FRAMES
) -> None:
    """Raise `ImageRefused` when the header of `img` (opened, not loaded) is over a limit.

    Seeking through an animation decodes its frames, so the frames walked are
    bounded by the pixel budget as well as by `max_frames`; `img` is left at frame 0.
    """
    fmt = img.format or "image"
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageRefused("undecodable", f"the {fmt} image has no pixels ({width}x{height})")
    if max(width, height) > MAX_SIDE or max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageRefused(
            "bad_shape",
            f"the image is {width}x{height} pixels; recog reads sides up to {MAX_SIDE:,} and "
            f"aspect ratios up to {MAX_ASPECT}:1",
        )
    pixels = width * height
    if pixels > max_pixels:
        raise ImageRefused(
            "too_many_pixels",
            f"the image is {width}x{height} = {pixels:,} pixels; the limit is {max_pixels:,}",
        )
    if getattr(img, "is_animated", False):
        budget = min(max_frames, max(1, max_pixels // pixels))
        try:
            img.seek(budget)
        except EOFError:
            img.seek(0)
            return
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad frame
            raise ImageRefused(
                "undecodable", f"a damaged {fmt} animation (cannot read its frames)"
            ) from exc
        raise ImageRefused(
            "too_many_frames",
            f"the {fmt} animation has more than {budget} frames of {width}x{height}",
        )


@contextmanager
def open_checked(
    source: str | Path | IO[bytes],
    *,
    formats: Sequence[str] | None = None,
    max_pixels: int = MAX_PIXELS,
    max_frames: int = MAX_FRAMES,
) -> Iterator[Image.Image]:
    """Pillow's lazy open with the pixel and frame caps checked; `ImageRefused` otherwise.

    Pillow's own decompression-bomb check (at twice `Image.MAX_IMAGE_PIXELS`)
    can fire inside `Image.open`; it becomes `too_many_pixels` as well.
    """
    kind = f"{formats[0]} " if formats else ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # ours is lower
            img = Image.open(source, formats=formats)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageRefused(
            "too_many_pixels", f"the image is {count}; the limit is {max_pixels:,}"
        ) from None
    except UnidentifiedImageError:
        what = f"not a {kind}image recog can read" if kind else "not an image format recog can read"
        raise ImageRefused("undecodable", what) from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a damaged header
        raise ImageRefused(
            "undecodable", f"a damaged or incomplete {kind}image (cannot read its header)"
        ) from exc
    with img:
        check_header(img, max_pixels=max_pixels, max_frames=max_frames)
        yield img


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def walk_files(folder: Path, loops: list[str] | None = None) -> list[Path]:
    """Files under `folder`, sorted, skipping hidden folders (.ipynb_checkpoints, .git).

    Symbolic links are the user's own file system (a Hugging Face snapshot, a DVC or
    git-annex checkout, a split made with `ln -s`): a linked file is listed and a linked
    folder walked, wherever it points.  A loop of links, a dangling link and a link to
    something that is neither a file nor a folder are each one RecogError naming it;
    with `loops`, a loop is a line added there instead and its link is not followed.
    """
    found: list[Path] = []
    seen = {os.path.realpath(folder)}
    for top, folders, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(folders):
            if name.startswith("."):
                continue
            sub = Path(top, name)
            real = os.path.realpath(sub)
            if sub.is_symlink():
                if Path(os.path.realpath(top)).is_relative_to(real):
                    line = f"{sub}: a symbolic link to {real}, a folder that holds it (a loop)"
                    if loops is None:
                        raise RecogError(line)
                    loops.append(f"{line}; not followed")
                    continue
                if real in seen:
                    continue  # a second link to a folder already walked: its files once
            seen.add(real)
            kept.append(name)
        folders[:] = kept
        for name in files:
            path = Path(top, name)
            if path.is_symlink():
                _check_link(path)
            found.append(path)
    return sorted(found)


def _check_link(path: Path) -> None:
    """A symbolic link a walk found: one line unless it leads to a regular file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise RecogError(
            f"{path}: a symbolic link to {os.readlink(path)}, which does not exist (a dangling link)"
        ) from None
    except OSError as exc:  # ELOOP: a chain of links that comes back to itself
        raise RecogError(
            f"{path}: a symbolic link that cannot be followed ({exc.strerror})"
        ) from None
    if not stat.S_ISREG(mode):
        raise RecogError(
            f"{path}: a symbolic link to {os.path.realpath(path)}, which is not a regular file"
        )


def confine(path: Path, root: Path, *, where: str) -> Path:
    """`path` when it lies inside `root`, else a RecogError naming `where`.

    where: what named the path (an annotation file and its entry), for the message.
    Inside means: after `..` and links are resolved, or, for a symbolic link the
    user's file system presents inside `root` (a snapshot of links into a blob
    store, a split made with `ln -s`), named without any `..` from `root` down.
    So a name in untrusted text (`<filename>../../etc/hostname`, a COCO
    `file_name`, a CSV row) that leads out is refused, and `linkdir/../x` cannot
    turn a link into a way out; a link found inside is followed wherever it
    points, its target read through the same image door and limits.  A loop of
    links, a dangling link and a link to something other than a regular file or
    folder (a FIFO, a device) are one line naming it.
    """
    if "\0" in str(path):
        raise RecogError(f"{where}: {_cut(path)!r} is not a file name (it holds a NUL byte)")
    inside = Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))
    lexical = Path(os.path.normpath(os.path.abspath(path)))
    named_inside = lexical.is_relative_to(Path(os.path.normpath(os.path.abspath(root))))
    if not inside and not (named_inside and _descends(path, root)):
        raise RecogError(f"{where}: {path} lies outside the dataset folder {root}; refused")
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise RecogError(
                f"{where}: {path} is a symbolic link to {os.readlink(path)}, which does not "
                "exist (a dangling link)"
            ) from None
        return path  # the caller says what a missing file means
    except OSError as exc:  # a name too long, a loop of links, no permission
        raise RecogError(f"{where}: {_cut(path)}: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise RecogError(f"{where}: {path} is not a regular file (a device, pipe or socket)")
    return path


def _descends(path: Path, root: Path) -> bool:
    """Whether `path` names its way down from `root` with no `..` (so a link in the way
    cannot be climbed back out of)."""
    parts, top = Path(path).parts, Path(root).parts
    below = parts[len(top) :] if parts[: len(top)] == top else parts
    return ".." not in below


def _cut(path: Path, limit: int = 160) -> str:
    """The path as text, its middle cut out past `limit` characters (for one-line messages)."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _stat_size(path: Path) -> int:
    """The file's size in bytes, after the checks every read makes (exists, not empty, cap)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RecogError(f"{path}: no such file") from None
    except OSError as exc:
        raise RecogError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    if not path.is_file():
        raise RecogError(f"{path}: not a file")
    if size == 0:
        raise RecogError(f"{path}: empty file (0 bytes)")
    problem = byte_problem(size)
    if problem:
        raise RecogError(f"{path}: {problem}")
    return size


@contextmanager
def _checked(source: Path | IO[bytes], path: str | Path) -> Iterator[Image.Image]:
    try:
        with open_checked(source) as img:
            yield img
    except ImageRefused as exc:
        raise RecogError(f"{path}: {exc.message}") from None


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """The file opened by Pillow (header read; pixels decode on `load()`), closed after.

    The byte, pixel and frame limits are checked first (a `RecogError` naming
    the file); failures of `load()` are the caller's to describe.
    """
    path = Path(path)
    _stat_size(path)
    with _checked(path, path) as img:
        yield img


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only (no pixel decode)."""
    with open_image(path) as img:
        return img.size


def upright_size(path: Path) -> tuple[int, int]:
    """(width, height) once the EXIF orientation is applied, the size `read_image` decodes
    to, from the header only: what annotations of a phone photo are drawn on."""
    with open_image(path) as img:
        height, width = _upright_size(img)
        return width, height


def rgb_array(img: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 of an opened image, EXIF orientation applied; 16-bit and float
    greyscale are scaled, palette and alpha converted.  Truncated data raises."""
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if img.mode.startswith("I;16") or arr.max() > 255:  # 16-bit: the high byte, as libpng
            arr = np.floor(np.clip(arr, 0, 65535) / 256)
        grey = np.clip(arr, 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _torchvision_decode(data: bytes) -> torch.Tensor | None:
    """(3, H, W) uint8 upright, or None where Pillow must try (CMYK, damaged files, ...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # libjpeg's "premature end of data" must not pass
            warnings.simplefilter("ignore", DeprecationWarning)
            tensor = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            image = decode_image(tensor, mode=ImageReadMode.RGB, apply_exif_orientation=True)
    except (RuntimeError, ValueError, Warning):
        return None
    return image if image.shape[0] == 3 and image.numel() > 0 else None


def read_image(path: str | Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB, upright: the EXIF orientation of phone photos is applied (as the
    server does for uploads); greyscale, CMYK, 16-bit, palette and alpha are converted.

    The limits are checked before decoding: the file's size before it is read,
    the pixels and frames its header declares before torchvision or Pillow decode.
    """
    return read_decoded(path).pixels


def image_from_bytes(data: bytes, name: str | Path) -> torch.Tensor:
    """`read_image` of bytes already read (an fsspec URL's, an upload's): the same limits
    and decoders; `name` is what the one-line error names."""
    return decoded_from_bytes(data, name).pixels


#: (width, height) of an image as stored -> the smallest (width, height) it may be decoded
#: at, or None for every pixel (`Task.decode_size` answers it for the task's `prepare`)
DecodeSize = Callable[[int, int], "tuple[int, int] | None"]


@dataclass(frozen=True)
class Decoded:
    """An image read for a consumer that needs only so many pixels (`decode_size`).

    pixels: (3, h, w) uint8 RGB, upright; full_size: (H, W) of the whole image, upright.
    They differ only for a JPEG decoded at 1/2, 1/4 or 1/8 of its size.
    """

    pixels: torch.Tensor
    full_size: tuple[int, int]

    @property
    def reduced(self) -> bool:
        return tuple(self.pixels.shape[-2:]) != self.full_size


def read_decoded(path: str | Path, decode_size: DecodeSize | None = None) -> Decoded:
    """`read_image`, decoded no larger than `decode_size` asks where that is cheaper."""
    path = Path(path)
    _stat_size(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RecogError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decoded_from_bytes(data, path, decode_size)


def _upright_size(img: Image.Image) -> tuple[int, int]:
    """(H, W) of an opened image once its EXIF orientation is applied (5-8 turn it)."""
    width, height = img.size
    try:
        turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:  # noqa: BLE001 - a damaged EXIF block: exif_transpose ignores it too
        turned = False
    return (width, height) if turned else (height, width)


def _scaled_jpeg(img: Image.Image, decode_size: DecodeSize | None) -> bool:
    """Set libjpeg to decode `img` at 1/2, 1/4 or 1/8 where that still gives `decode_size`.

    libjpeg scales in the DCT domain while it decodes (an average over each block, no
    aliasing), so a 500x375 photo wanted at 146 px decodes at 250x188 in 0.7 of the time,
    and the resize after it handles a quarter of the pixels (docs/export.md)."""
    if decode_size is None or img.format != "JPEG":
        return False
    want = decode_size(*img.size)
    if want is None or img.size[0] < 2 * want[0] or img.size[1] < 2 * want[1]:
        return False
    img.draft("RGB", (max(1, want[0]), max(1, want[1])))  # never below `want` on either side
    return True


def decoded_from_bytes(
    data: bytes, name: str | Path, decode_size: DecodeSize | None = None
) -> Decoded:
    """The one decoder behind `read_image`, `image_from_bytes` and `read_decoded`."""
    if not data:
        raise RecogError(f"{name}: empty file (0 bytes)")
    problem = byte_problem(len(data))
    if problem:
        raise RecogError(f"{name}: {problem}")
    with _checked(io.BytesIO(data), name) as img:
        full_size = _upright_size(img)
        scaled = _scaled_jpeg(img, decode_size)
        if not scaled and data.startswith(_TORCHVISION_MAGIC):
            image = _torchvision_decode(data)
            if image is not None:
                return Decoded(image, tuple(image.shape[-2:]))  # type: ignore[arg-type]
        try:
            rgb = rgb_array(img)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad pixel data
            reason = str(exc).split("\n")[0] or exc.__class__.__name__
            raise RecogError(f"{name}: cannot decode image ({reason})") from None
    pixels = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    return Decoded(pixels, full_size if scaled else tuple(pixels.shape[-2:]))  # type: ignore[arg-type]


# ------------------------------------------------------------- dataset screening
def _ends_with_eoi(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 64))
        return b"\xff\xd9" in f.read()


def _reason(exc: RecogError, path: Path) -> str:
    """The part of an error message after the file name."""
    return str(exc).removeprefix(f"{path}: ")


def unreadable(path: Path) -> str | None:
    """Why `path` is not a usable image, or None: the cheap check loaders run before training.

    The limits and the header, then Pillow's `verify()` (PNG chunks and CRCs,
    no pixel decode).  `verify()` reads no JPEG scan data, so a cut-off JPEG
    passes it; a missing end-of-image marker near the end is the cheap tell,
    confirmed by a decode.
    """
    try:
        with open_image(path) as img:
            fmt = img.format
            img.verify()
        if fmt == "JPEG" and not _ends_with_eoi(path):
            read_image(path)
        return None
    except RecogError as exc:
        return _reason(exc, path)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for bad files
        return str(exc).split("\n")[0] or exc.__class__.__name__


def undecodable(path: Path) -> str | None:
    """Why `path` is not a usable image, or None, after a full decode (`recog data check`)."""
    try:
        read_image(path)
        return None
    except RecogError as exc:
        return _reason(exc, path)


def screen(
    paths: Sequence[Path],
    *,
    strict: bool,
    desc: str,
    check: Callable[[Path], str | None] = unreadable,
) -> dict[Path, str]:
    """{path: reason} of the unreadable files among `paths` (two threads, a progress bar).

    check: the test per file (default `unreadable`); with `strict` the first
    unreadable file is a RecogError instead.
    """
    found: dict[Path, str] = {}
    with progress_bar(unit="img") as bar, ThreadPoolExecutor(max_workers=2) as pool:
        task = bar.add_task(f"check {desc}", total=len(paths), info="")
        for path, problem in zip(paths, pool.map(check, paths), strict=True):
            bar.advance(task)
            if problem is None:
                continue
            if strict:
                raise RecogError(
                    f"{path}: {problem} (--strict stops at the first unreadable image)"
                )
            found[path] = problem
    return found


T = TypeVar("T")


def drop_unreadable(
    groups: Sequence[Sequence[T]],
    files: Callable[[T], Sequence[Path]],
    *,
    strict: bool,
    desc: str,
) -> tuple[list[list[T]], list[tuple[str, str]]]:
    """Each group (a split) without the items one of whose `files` is unreadable, and the
    (path, reason) pairs found, warned about in one line; with `strict` the first is an error.

    Loaders run this before training, so a truncated file in the validation half
    is found before the first epoch, not at its end.
    """
    paths = list(dict.fromkeys(f for group in groups for item in group for f in files(item)))
    bad = screen(paths, strict=strict, desc=desc)
    kept = [[x for x in group if not any(f in bad for f in files(x))] for group in groups]
    skipped = [(str(p), why) for p, why in bad.items()]
    warn_skipped(skipped)
    return kept, skipped


def warn_skipped(skipped: Sequence[tuple[str, str]], *, shown: int = 3) -> None:
    """One warning line: how many unreadable images were left out, and the first few."""
    if not skipped:
        return
    first = "; ".join(f"{p}: {why}" for p, why in skipped[:shown])
    more = f"; and {len(skipped) - shown} more" if len(skipped) > shown else ""
    warn(
        f"skipped {len(skipped)} unreadable image{'s' if len(skipped) != 1 else ''} "
        f"(--strict makes this an error): {first}{more}"
    )


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
