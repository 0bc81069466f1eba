"""Detection annotations in memory: the records every reader returns and the checks they share.

Owns `DetectionRecord` and `DetectionAnnotations`, the box checks the readers
share (`BoxChecker`: clip to the image, drop empty boxes, one warning line per
problem), number parsing (`finite_number`), and what the writers share
(`format_coord`, `output_names`, `link_or_copy`: a copy or reflink, never a hard
link); `with_class_names` re-indexes labels into a given class order.  The
formats themselves live in `coco.py`, `voc.py` and `yolo.py`; `detection.py` picks one.

Boxes are always `(N, 4)` float32 xyxy in pixel edges of the original image
(a box covering the whole W x H image is `[0, 0, W, H]`); labels are `(N,)`
int64 indices into `class_names`.  Images with no objects are kept as
negatives with `(0, 4)` boxes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from recog.errors import RecogError

# Writers round coordinates (YOLO to 1e-6 of the image size, COCO and VOC to
# 0.001 px), so a box read back can overshoot its image by a hair: clip those
# silently and warn only about real overshoots.
CLIP_TOLERANCE_PX = 0.01


@dataclass
class DetectionRecord:
    """One image and its objects.

    boxes: (N, 4) float32 xyxy, pixels of the original image.
    labels: (N,) int64 indices into the owning `DetectionAnnotations.class_names`.
    """

    path: Path
    width: int
    height: int
    boxes: torch.Tensor
    labels: torch.Tensor
    #: the split the source put this image in (`train`, `val`, `test`), or "" when it says none
    split: str = ""


@dataclass
class DetectionAnnotations:
    """A whole annotation set; `warnings` holds one line per problem met while reading."""

    records: list[DetectionRecord]
    class_names: list[str]
    warnings: list[str] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return sum(int(r.boxes.shape[0]) for r in self.records)


@dataclass
class BoxChecker:
    """Cleans the boxes of one read: clips to the image, drops empty ones, keeps the story.

    Clipped boxes are counted into one warning line (`finish`); each dropped
    box gets its own line naming the file and the object.
    """

    warnings: list[str] = field(default_factory=list)
    clipped: int = 0
    first_clipped: str = ""

    def clean(
        self,
        boxes: Sequence[Sequence[float]],
        labels: Sequence[int],
        *,
        width: int,
        height: int,
        where: str,
        names: Sequence[str],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """boxes: xyxy pixels; names: how to point at each object ("object 2", "line 5")."""
        kept_boxes: list[list[float]] = []
        kept_labels: list[int] = []
        for (x1, y1, x2, y2), label, name in zip(boxes, labels, names, strict=True):
            if x2 <= x1 or y2 <= y1:
                self.warnings.append(
                    f"{where}: {name}: dropped box {_fmt_box(x1, y1, x2, y2)}: zero or negative area"
                )
                continue
            cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
            cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
            if cx2 <= cx1 or cy2 <= cy1:
                self.warnings.append(
                    f"{where}: {name}: dropped box {_fmt_box(x1, y1, x2, y2)}: "
                    f"lies outside the {width}x{height} image"
                )
                continue
            moved = max(abs(cx1 - x1), abs(cy1 - y1), abs(cx2 - x2), abs(cy2 - y2))
            if moved > CLIP_TOLERANCE_PX:
                self.clipped += 1
                self.first_clipped = self.first_clipped or f"{where} {name}"
            kept_boxes.append([cx1, cy1, cx2, cy2])
            kept_labels.append(int(label))
        return (
            torch.tensor(kept_boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(kept_labels, dtype=torch.int64),
        )

    def finish(self) -> list[str]:
        """All warnings, with the clipping count as one line at the end."""
        if self.clipped:
            self.warnings.append(
                f"{self.clipped} box{'es' if self.clipped != 1 else ''} extended past "
                f"{'their' if self.clipped != 1 else 'its'} image and "
                f"{'were' if self.clipped != 1 else 'was'} clipped (first: {self.first_clipped})"
            )
        return self.warnings


def _fmt_box(*xs: float) -> str:
    return "[" + ", ".join(f"{x:g}" for x in xs) + "]"


def finite_number(text: object, *, where: str) -> float:
    """A finite float from a str or number, else a RecogError naming `where`."""
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecogError(f"{where}: {short_repr(text)} is not a number") from None
    except OverflowError:  # an integer of hundreds of digits
        raise RecogError(f"{where}: {short_repr(text)} is too large a number") from None
    if not math.isfinite(value):
        raise RecogError(f"{where}: {short_repr(text)} is not a finite number")
    return value


def short_repr(value: object, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters for a one-line message."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str() (over 4,300 digits)
        return f"an integer of more than {limit} digits"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def output_names(records: Sequence[DetectionRecord], *, flat: bool = False) -> list[str]:
    """A unique relative POSIX image name per record, for writers that lay images out themselves.

    Names keep the folders below the images' common parent (so `images/train/a.jpg`
    and `images/val/a.jpg` stay apart), or join them with `_` when `flat`.  Names
    are unique without their suffix too (label and XML files drop it); a clash left
    over gets `-1`, `-2`... on its stem.
    """
    if not records:
        return []
    absolute = [os.path.abspath(r.path) for r in records]
    common = os.path.commonpath([os.path.dirname(p) for p in absolute])
    names: list[str] = []
    taken: set[str] = set()
    for path in absolute:
        rel = Path(os.path.relpath(path, common))
        if flat:
            rel = Path("_".join(rel.parts))
        candidate, n = rel, 0
        while candidate.with_suffix("").as_posix().lower() in taken:
            n += 1
            candidate = rel.with_stem(f"{rel.stem}-{n}")
        taken.add(candidate.with_suffix("").as_posix().lower())
        names.append(candidate.as_posix())
    return names


def format_coord(value: float) -> str:
    """A pixel coordinate as text: to 0.001 px, without trailing zeros ("81", "80.5")."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def link_or_copy(src: Path, dst: Path) -> None:
    """Place a copy of `src` at `dst`, atomically replacing `dst`: a reflink where the file
    system shares blocks copy-on-write (Btrfs, XFS), else the bytes copied.

    Never a hard link: editing the copy in place would edit the user's original.
    Not a symbolic link: a written dataset must stand on its own (the source may
    be moved or deleted after the copy).
    """
    src_abs = Path(os.path.abspath(src))
    if dst.exists() and os.path.samefile(src_abs, dst):
        return  # writing into the folder the image already lives in
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with open(fd, "wb") as out, open(src_abs, "rb") as source:
            cloned = _reflink(source.fileno(), out.fileno())
        if not cloned:
            shutil.copyfile(src_abs, tmp)
        shutil.copystat(src_abs, tmp)  # the mode and times a copy of the file keeps
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Linux's FICLONE ioctl (_IOW(0x94, 9, int)): `dst` shares `src`'s blocks until either is written
_FICLONE = 0x40049409


def _reflink(src_fd: int, dst_fd: int) -> bool:
    """Whether `dst_fd` became a copy-on-write clone of `src_fd` (False where unsupported)."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return False
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError:  # ext4, tmpfs, another device: no copy-on-write here
        return False
    return True


def with_class_names(
    ann: DetectionAnnotations, *, class_names: Sequence[str], source: Path | str
) -> DetectionAnnotations:
    """The same annotations with labels re-indexed into `class_names` (which may add or reorder)."""
    if len(set(class_names)) != len(class_names):
        raise RecogError(f"class names given for {source} repeat a name: {list(class_names)}")
    index = {name: i for i, name in enumerate(class_names)}
    used = {ann.class_names[int(i)] for r in ann.records for i in r.labels}
    missing = sorted(used - index.keys())
    if missing:
        raise RecogError(
            f"{source}: classes {missing} are not in the given class names {list(class_names)}"
        )
    mapping = torch.tensor([index.get(name, -1) for name in ann.class_names], dtype=torch.int64)
    records = [
        DetectionRecord(r.path, r.width, r.height, r.boxes, mapping[r.labels], r.split)
        for r in ann.records
    ]
    return DetectionAnnotations(records, list(class_names), list(ann.warnings))
