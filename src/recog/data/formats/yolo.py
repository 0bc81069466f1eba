"""Ultralytics YOLO detection datasets: `read_yolo` and `write_yolo`.

Layout: a `data.yaml` (or another YAML with `names`) holding `names` (a list,
or `{id: name}` with ids 0..n-1), optionally `path` (the dataset root,
relative to the YAML) and `train` / `val` / `test` (image folders, `.txt`
lists of images, or lists of either, relative to the root; default
`images/`).  Each image's labels sit at the same place under `labels/`
instead of `images/` with a `.txt` suffix, one object a line:
`class cx cy w h`, normalized to [0, 1] by the image size (read from the
image header).  A line `class x1 y1 x2 y2 ...` (a segmentation polygon of 3+
points) counts as the box around it.  An image without a label file, or with
an empty one, is a negative.  The writer emits 6 decimals, as Ultralytics does.
Everything the YAML names (its `path`, the splits, the lines of image lists)
must lie inside the YAML's folder, named from there down (symbolic links
inside it are followed, `recog.data.images.confine`): a YAML that points
elsewhere is refused (Ultralytics' shared `path: ../datasets/x`
YAMLs must be copied into the dataset folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recog.data.formats.records import (
    BoxChecker,
    DetectionAnnotations,
    DetectionRecord,
    finite_number,
    link_or_copy,
    output_names,
    short_repr,
)
from recog.data.images import DETECTION_IMAGE_SUFFIXES, confine, upright_size, walk_files
from recog.errors import RecogError
from recog.io import atomic_write_text
from recog.yaml_text import dump_yaml, load_yaml_file

_SPLITS = ("train", "val", "test")
_SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "test": "test"}


def load_yaml(path: Path) -> Any:
    """The YAML document in `path`; anything wrong with it is a RecogError naming the file."""
    return load_yaml_file(path)


def find_data_yaml(root: Path) -> Path | None:
    """`root/data.yaml`, else the one YAML in `root` whose mapping has `names`, else None."""
    for name in ("data.yaml", "data.yml"):
        if (root / name).is_file():
            return root / name
    for path in sorted([*root.glob("*.yaml"), *root.glob("*.yml")]):
        try:
            cfg = load_yaml(path)
        except RecogError:
            continue
        if isinstance(cfg, dict) and "names" in cfg:
            return path
    return None


def _class_names(path: Path, cfg: dict[str, Any]) -> list[str]:
    names = cfg.get("names")
    if isinstance(names, dict):
        if not all(type(k) is int for k in names) or sorted(names) != list(range(len(names))):
            raise RecogError(
                f"{path}: 'names' keys must be the class ids 0..{len(names) - 1}, "
                f"got {short_repr(list(names))}"
            )
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise RecogError(
            f"{path}: 'names' must be a non-empty list of class names or a mapping id -> name"
        )
    if "nc" in cfg and cfg["nc"] != len(names):
        raise RecogError(
            f"{path}: 'nc' is {short_repr(cfg['nc'])} but 'names' lists {len(names)} classes"
        )
    return [str(n) for n in names]


def _walk(folder: Path, suffixes: tuple[str, ...], warnings: list[str]) -> list[Path]:
    """The files under `folder` with one of `suffixes`, sorted; linked files and folders are
    followed (`walk_files`; a loop of links is a warning, not followed, so `data check` lists
    it; a dangling link is one line naming it)."""
    loops: list[str] = []
    found = [p for p in walk_files(folder, loops) if p.suffix.lower() in suffixes]
    warnings += [line for line in loops if line not in warnings]  # a folder two splits name
    return found


def _images_in(source: Path, root: Path, warnings: list[str]) -> list[Path]:
    """The images a `train`/`val`/`test` entry names: a folder (searched recursively) or a .txt list."""
    if source.is_dir():
        found = _walk(source, DETECTION_IMAGE_SUFFIXES, warnings)
        return [confine(p, root, where=str(source)) for p in found if p.is_file()]
    if source.suffix.lower() in DETECTION_IMAGE_SUFFIXES:
        return [source]
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecogError(
            f"{source}: cannot read as a list of images ({exc.__class__.__name__})"
        ) from None
    images = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            image = _join(source.parent, line.strip())
            images.append(confine(image, root, where=f"{source} line {lineno}"))
    return images


def _join(base: Path, text: str) -> Path:
    """`text` as a path relative to `base` (an absolute one as it is)."""
    return Path(text) if Path(text).is_absolute() else base / text


def _label_path(image: Path) -> Path:
    """Ultralytics' rule: the last `images` folder in the path becomes `labels`, the suffix `.txt`."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _parse_line(
    label: Path, lineno: int, fields: list[str], num_classes: int
) -> tuple[int, list[float]]:
    """(class id, normalized xyxy) of one label line."""
    where = f"{label} line {lineno}"
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        raise RecogError(
            f"{where}: expected 5 fields 'class cx cy w h' (or a polygon 'class x1 y1 x2 y2 x3 y3 ...'), "
            f"got {len(fields)}"
        )
    cls = finite_number(fields[0], where=f"{where}: class id")
    if cls != int(cls) or not 0 <= cls < num_classes:
        raise RecogError(
            f"{where}: class id {fields[0]} is not one of the {num_classes} classes (0..{num_classes - 1})"
        )
    values = [finite_number(v, where=where) for v in fields[1:]]
    if len(values) == 4:
        cx, cy, w, h = values
        return int(cls), [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
    xs, ys = values[0::2], values[1::2]
    return int(cls), [min(xs), min(ys), max(xs), max(ys)]


def _read_labels(
    label: Path, *, num_classes: int, width: int, height: int
) -> tuple[list[list[float]], list[int], list[str]]:
    """Pixel xyxy boxes, class ids and line names of one label file (empty when it is absent)."""
    if not label.is_file():
        return [], [], []
    try:
        text = label.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecogError(f"{label}: cannot read ({exc.__class__.__name__})") from None
    boxes: list[list[float]] = []
    classes: list[int] = []
    names: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        cls, (x1, y1, x2, y2) = _parse_line(label, lineno, fields, num_classes)
        boxes.append([x1 * width, y1 * height, x2 * width, y2 * height])
        classes.append(cls)
        names.append(f"line {lineno}")
    return boxes, classes, names


def _image_sources(
    yaml_path: Path, cfg: dict[str, Any], warnings: list[str]
) -> list[tuple[str, Path]]:
    """(split, image folder or list) pairs the YAML names; the whole `images/` when none."""
    root = base = yaml_path.parent
    if cfg.get("path"):
        given = str(cfg["path"])
        candidate = confine(_join(base, given), root, where=f"{yaml_path}: 'path'")
        if candidate.is_dir():
            base = candidate
        else:
            warnings.append(f"{yaml_path}: 'path' {given!r} is not a folder; using {base}")
    sources: list[tuple[str, Path]] = []
    for split in _SPLITS:
        entries = cfg.get(split) or []
        for entry in entries if isinstance(entries, list) else [entries]:
            source = confine(_join(base, str(entry)), root, where=f"{yaml_path}: {split}")
            if source.exists():
                sources.append((split, source))
            else:
                warnings.append(f"{yaml_path}: {split} {str(entry)!r} not found at {source}")
    return sources or [("", base / "images")]


def read_yolo(root: str | Path) -> DetectionAnnotations:
    """A YOLO dataset from its folder or its YAML; images of every split, each once."""
    root = Path(root)
    yaml_path = root if root.is_file() else find_data_yaml(root)
    if yaml_path is None:
        raise RecogError(f"{root}: no data.yaml (or other .yaml with 'names') for a YOLO dataset")
    cfg = load_yaml(yaml_path)
    if not isinstance(cfg, dict):
        raise RecogError(f"{yaml_path}: expected a mapping with 'names', got {type(cfg).__name__}")
    class_names = _class_names(yaml_path, cfg)
    checker = BoxChecker()
    images: dict[str, tuple[Path, str]] = {}
    split_sources = _image_sources(yaml_path, cfg, checker.warnings)
    sources = [source for _, source in split_sources]
    for split, source in split_sources:
        found = _images_in(source, yaml_path.parent, checker.warnings) if source.exists() else []
        for image in found:
            # an image listed by several splits (train and val both `images/`) keeps the first
            images.setdefault(os.path.abspath(image), (image, split))

    records, used_labels = [], set()
    for image, split in images.values():
        if not image.is_file():
            checker.warnings.append(f"{image}: listed as an image but not found; skipped")
            continue
        try:
            # labels are fractions of the upright image, as Ultralytics (exif_size) reads them
            width, height = upright_size(image)
        except RecogError as exc:  # the image, not the set, is unusable: as a missing one
            checker.warnings.append(f"{exc}; skipped")
            continue
        label = confine(_label_path(image), yaml_path.parent, where=str(image))
        used_labels.add(os.path.abspath(label))
        boxes, classes, names = _read_labels(
            label, num_classes=len(class_names), width=width, height=height
        )
        kept, labels = checker.clean(
            boxes, classes, width=width, height=height, where=str(label), names=names
        )
        records.append(DetectionRecord(image, width, height, kept, labels, split))

    label_dirs = {_label_path(s / "x").parent for s in sources if s.is_dir()}
    for label_dir in sorted(d for d in label_dirs if d.is_dir()):
        for label in _walk(label_dir, (".txt",), checker.warnings):
            if os.path.abspath(label) not in used_labels:
                checker.warnings.append(f"{label}: no image for these labels; skipped")
    if not records:
        raise RecogError(
            f"{yaml_path}: no images found (looked in {', '.join(str(s) for s in sources)})"
        )
    return DetectionAnnotations(records, class_names, checker.finish())


def _split_keys(names: list[str]) -> dict[str, str]:
    """`train`/`val`/`test` entries for data.yaml: split folders when every image sits in one."""
    tops = {Path(n).parts[0] for n in names if len(Path(n).parts) > 1}
    if names and all(len(Path(n).parts) > 1 for n in names) and tops <= _SPLIT_FOLDERS.keys():
        keys = {_SPLIT_FOLDERS[t]: f"images/{t}" for t in sorted(tops)}
        keys.setdefault("train", keys.get("val", "images"))
        keys.setdefault("val", keys["train"])
        return {k: keys[k] for k in _SPLITS if k in keys}
    return {"train": "images", "val": "images"}


def write_yolo(ann: DetectionAnnotations, out_dir: str | Path) -> Path:
    """`out_dir/data.yaml`, `images/` of copies (reflinks where possible) and `labels/*.txt` (empty for negatives).

    Images keep the folders below their common parent, so split folders such as
    `train/` and `val/` survive and become the YAML's `train` and `val`; records
    that carry a `split` are laid out by it instead.
    """
    out_dir = Path(out_dir)
    names = output_names(ann.records)
    if any(r.split for r in ann.records):
        # records that carry their split go to images/<split>/ (unsplit ones to train)
        names = [
            n if Path(n).parts[0] == (r.split or "train") else f"{r.split or 'train'}/{n}"
            for r, n in zip(ann.records, names, strict=True)
        ]
    for record, name in zip(ann.records, names, strict=True):
        link_or_copy(record.path, out_dir / "images" / name)
        lines = []
        for (x1, y1, x2, y2), label in zip(
            record.boxes.tolist(), record.labels.tolist(), strict=True
        ):
            cx, cy = (x1 + x2) / 2 / record.width, (y1 + y2) / 2 / record.height
            w, h = (x2 - x1) / record.width, (y2 - y1) / record.height
            lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        atomic_write_text(out_dir / "labels" / Path(name).with_suffix(".txt"), "".join(lines))
    cfg: dict[str, Any] = {
        **_split_keys(names),
        "nc": len(ann.class_names),
        "names": dict(enumerate(ann.class_names)),
    }
    atomic_write_text(out_dir / "data.yaml", dump_yaml(cfg))
    return out_dir
