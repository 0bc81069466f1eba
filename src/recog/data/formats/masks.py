"""Image/mask folders for semantic segmentation: find pairs, read classes and masks, split, write.

Layout: `ROOT/images/*` and `ROOT/masks/*` with matching file stems (the
mask of `images/7.jpg` is `masks/7.png`), optionally once per split as
`ROOT/train/{images,masks}` and `ROOT/val/{images,masks}` (or `test/`).
Class names come from `--classes a,b,c`, or a `classes:` (or `names:`) list
or mapping in `ROOT/data.yaml`, `classes.yaml` or `dataset.yaml`, or
`ROOT/classes.txt` (one name a line).  Without any of them the classes are
inferred only when the masks hold a small contiguous range of ids 0..K-1
(plus 255): one stray value (a 200 among 0, 1, 2) is an error naming the
values and the files, not a 201-class model.

A mask's pixel value is its class id; 255 means "ignore" (not scored, not
trained on).  Three encodings are read:
- greyscale class-id PNGs (mode L, I;16, I) and palette PNGs (mode P: the
  palette index is the class id, as in Pascal VOC);
- binary masks with only the values 0 and 255 (mode 1, or a dataset whose
  masks hold nothing else, with no class list or a two-name one): 255 -> 1.
An RGB mask is read only when it is grey (R = G = B); a coloured RGB mask is
an error that says how to convert it, as are a JPEG mask (lossy compression
changes the ids along every edge), a mask whose size differs from its image,
a value outside the class list, and an image without a mask.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recog.data.formats.records import short_repr
from recog.data.formats.yolo import load_yaml
from recog.data.images import confine, is_image_file, open_image, read_image
from recog.data.splits import seeded_split
from recog.errors import RecogError
from recog.types import IGNORE_INDEX

SPLITS = (("train",), ("val", "test"))
YAML_NAMES = ("data.yaml", "classes.yaml", "dataset.yaml")
BINARY_SAMPLE = 64  # masks read to decide whether a dataset is binary 0/255
#: most class ids inferred from mask values; more needs --classes or a class list file
MAX_INFERRED_CLASSES = 32
_LOSSY = (".jpg", ".jpeg")
_LOSSY_MASK = (
    "a JPEG mask: lossy compression changes class ids along every edge; "
    "save masks as PNG (greyscale class ids or palette)"
)


@dataclass(frozen=True)
class MaskPair:
    image: Path
    mask: Path


def is_mask_dir(path: str | Path) -> bool:
    """True for the image/mask layouts above."""
    root = Path(path)
    if not root.is_dir():
        return False
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return True
    return (root / "train" / "images").is_dir() and (root / "train" / "masks").is_dir()


def find_pairs(folder: Path) -> tuple[list[MaskPair], list[str]]:
    """Pairs under `folder/images` + `folder/masks`, sorted by image name, and warnings.

    An image without a mask is an error; a mask without an image is a warning.
    """
    images_dir, masks_dir = folder / "images", folder / "masks"
    images = sorted(
        confine(p, folder, where=str(images_dir))
        for p in images_dir.iterdir()
        if p.is_file() and is_image_file(p)
    )
    masks: dict[str, Path] = {}
    for p in sorted(masks_dir.iterdir()):
        if p.is_file() and is_image_file(p):
            confine(p, folder, where=str(masks_dir))
            if p.suffix.lower() in _LOSSY:
                raise RecogError(f"{p}: {_LOSSY_MASK}")
            if p.stem in masks:
                raise RecogError(
                    f"{masks_dir}: two masks for {p.stem!r} ({masks[p.stem].name}, {p.name})"
                )
            masks[p.stem] = p
    if not images:
        raise RecogError(f"{images_dir}: no images")
    missing = [p for p in images if p.stem not in masks]
    if missing:
        raise RecogError(
            f"{missing[0]}: no mask for this image (expected {masks_dir}/{missing[0].stem}.png)"
            + (f"; {len(missing) - 1} more image(s) without a mask" if len(missing) > 1 else "")
        )
    stems = {p.stem for p in images}
    orphans = [m for s, m in masks.items() if s not in stems]
    warnings = (
        [f"{orphans[0]}: mask without an image ({len(orphans)} in all); ignored"] if orphans else []
    )
    return [MaskPair(p, masks[p.stem]) for p in images], warnings


def read_classes(root: Path, classes: str | list[str] | None) -> list[str] | None:
    """Class names from the command line (comma-separated) or the dataset's yaml."""
    if classes:
        names = classes.split(",") if isinstance(classes, str) else list(classes)
        names = [n.strip() for n in names]
        if len(names) < 2 or any(not n for n in names):
            raise RecogError(f"--classes: needs at least two non-empty names, got {classes!r}")
        return names
    for name in YAML_NAMES:
        file = root / name
        if not file.is_file():
            continue
        data = load_yaml(file)
        value = data.get("classes", data.get("names")) if isinstance(data, dict) else None
        if isinstance(value, dict):
            ids = {k if type(k) is int else int(k): v for k, v in value.items() if _is_id(k)}
            if len(ids) != len(value) or sorted(ids) != list(range(len(ids))):
                raise RecogError(f"{file}: class ids must be 0..N-1, got {short_repr(list(value))}")
            value = [str(ids[k]) for k in range(len(ids))]
        if isinstance(value, list) and len(value) >= 2:
            return [str(v) for v in value]
        raise RecogError(f"{file}: needs a 'classes' list of at least two names")
    file = root / "classes.txt"
    if file.is_file():
        try:
            names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise RecogError(f"{file}: cannot read ({exc.__class__.__name__})") from None
        names = [n for n in names if n]
        if len(names) < 2:
            raise RecogError(f"{file}: needs at least two class names, one a line")
        return names
    return None


def _is_id(key: object) -> bool:
    """An int key, or a str of at most a few digits (YAML keys quoted as "0")."""
    return type(key) is int or (
        isinstance(key, str) and key.isascii() and key.isdigit() and len(key) < 6
    )


def read_mask_raw(path: Path) -> np.ndarray:
    """The mask's pixel values (H, W) as stored, before any binary mapping."""
    try:
        with open_image(path) as img:
            if img.format == "JPEG":
                raise RecogError(f"{path}: {_LOSSY_MASK}")
            img.load()
            mode = img.mode
            if mode == "1":
                return np.asarray(img, dtype=np.uint8) * 255
            if mode in ("L", "P", "I;16", "I", "I;16B", "I;16L"):
                return np.asarray(img).astype(np.int64)
            if mode == "LA":
                return np.asarray(img)[..., 0].astype(np.int64)
            if mode in ("RGB", "RGBA"):
                rgb = np.asarray(img)[..., :3]
                if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    return rgb[..., 0].astype(np.int64)
                raise RecogError(
                    f"{path}: an RGB mask that is not a palette image; save masks as greyscale "
                    "PNGs of class ids, or as palette PNGs (mode P) whose indices are the class ids"
                )
    except RecogError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is an unusable mask
        raise RecogError(f"{path}: cannot decode mask ({exc.__class__.__name__})") from None
    raise RecogError(f"{path}: unsupported mask mode {mode!r} (use greyscale or palette PNGs)")


@dataclass(frozen=True)
class MaskDecoder:
    """Turns stored mask values into class ids and checks them against the classes."""

    num_classes: int
    binary: bool

    def __call__(self, raw: np.ndarray, path: Path) -> torch.Tensor:
        """(H, W) int64 class ids, 255 = ignore."""
        if self.binary:
            bad = (raw != 0) & (raw != 255)
            if bad.any():
                raise RecogError(
                    f"{path}: mask value {int(raw[bad][0])} in a binary (0/255) mask set"
                )
            return torch.from_numpy((raw == 255).astype(np.int64))
        values = np.unique(raw)
        bad = values[(values >= self.num_classes) & (values != IGNORE_INDEX) | (values < 0)]
        if bad.size:
            raise RecogError(
                f"{path}: mask value {int(bad[0])} is not a class id "
                f"(classes 0..{self.num_classes - 1}, 255 = ignore)"
            )
        return torch.from_numpy(raw.astype(np.int64))


def resolve_classes(
    pairs: list[MaskPair], root: Path, classes: str | list[str] | None
) -> tuple[list[str], MaskDecoder]:
    """The class names and how to decode this dataset's masks."""
    names = read_classes(root, classes)
    sample = {p.mask: set(np.unique(read_mask_raw(p.mask)).tolist()) for p in pairs[:BINARY_SAMPLE]}
    values = set().union(*sample.values())
    binary = values <= {0, 255} and (names is None or len(names) == 2)
    if names is None:
        names = ["background", "foreground"] if binary else _inferred_names(root, sample)
    return names, MaskDecoder(len(names), binary)


def _inferred_names(root: Path, sample: dict[Path, set[int]]) -> list[str]:
    """class_0..class_{K-1} when the sampled masks hold the ids 0..K-1 (and 255) only."""
    ids = set().union(*sample.values()) - {IGNORE_INDEX}
    count = next(k for k in range(len(ids) + 1) if k not in ids)
    stray = sorted(v for v in ids if v >= count)
    if not stray and count <= MAX_INFERRED_CLASSES:
        return [f"class_{i}" for i in range(max(count, 2))]
    if stray:
        files = [str(m) for m, vals in sample.items() if vals & set(stray)]
        what = (
            f"mask values {', '.join(map(str, stray[:5]))}{' ...' if len(stray) > 5 else ''} "
            f"are not among the class ids 0..{count - 1} (in {', '.join(files[:3])}"
            f"{f' and {len(files) - 3} more' if len(files) > 3 else ''})"
        )
    else:
        what = f"the masks hold {count} class ids, more than recog infers ({MAX_INFERRED_CLASSES})"
    raise RecogError(
        f"{root}: {what}; pass --classes with one name per class id, "
        "or list the names in data.yaml or classes.txt"
    )


def load_pair(pair: MaskPair, decode: MaskDecoder) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, H, W) uint8 image and (H, W) int64 mask; a size mismatch is an error."""
    image = read_image(pair.image)
    mask = decode(read_mask_raw(pair.mask), pair.mask)
    if tuple(mask.shape) != tuple(image.shape[-2:]):
        raise RecogError(
            f"{pair.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
            f"{pair.image.name} is {image.shape[2]}x{image.shape[1]} (width x height)"
        )
    return image, mask


def split_pairs(
    root: Path, *, val_split: float, seed: int
) -> tuple[list[MaskPair], list[MaskPair], list[str]]:
    """(train, val, warnings): the layout's own split, else a fixed-seed random one."""
    if (root / "train" / "images").is_dir():
        train, warnings = find_pairs(root / "train")
        val_dir = next((root / s for s in SPLITS[1] if (root / s / "images").is_dir()), None)
        if val_dir is None:
            raise RecogError(f"{root}: has train/ but no val/ (or test/) with images/ and masks/")
        val, more = find_pairs(val_dir)
        return train, val, warnings + more
    pairs, warnings = find_pairs(root)
    if len(pairs) < 2:
        raise RecogError(f"{root}: needs at least 2 image/mask pairs, found {len(pairs)}")
    train, val = seeded_split(len(pairs), val_split, seed)
    return [pairs[i] for i in train], [pairs[i] for i in val], warnings


def all_pairs(root: Path) -> list[MaskPair]:
    if (root / "train" / "images").is_dir():
        out = []
        for split in ("train", "val", "test"):
            if (root / split / "images").is_dir():
                out += find_pairs(root / split)[0]
        return out
    return find_pairs(root)[0]


def encode_png(mask: torch.Tensor) -> bytes:
    """(H, W) class ids (< 256) -> greyscale PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(mask.to(torch.uint8).cpu().numpy()).save(buf, format="PNG")
    return buf.getvalue()
