"""`recog data check|stats`: what is in a dataset and what is wrong with it, per task.

`data_report` picks the report of the task the data holds: class folders
(`check_dataset`: image headers give sizes and modes), detection annotation
sets (`detection_stats`: counts, box sizes) and mask folders (`mask_report`:
pixel shares).  Every image is decoded in full through the one door
(`recog.data.images`), so a truncated JPEG, which the loaders' cheap check
may miss, is reported here.  Problems are one line each.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from recog.data.formats import TASK_FORMATS, DataFormat, detect_format, infer_task
from recog.data.formats.class_folders import SPLIT_NAMES
from recog.data.formats.detection import read_detection
from recog.data.formats.masks import all_pairs, load_pair, resolve_classes
from recog.data.images import (
    is_image_file,
    open_image,
    screen,
    undecodable,
    walk_files,
)
from recog.errors import RecogError
from recog.types import IGNORE_INDEX, TaskName

# COCO's size classes (pixels of box area) and a finer histogram of the box side.
SIDE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, 10**9)


def _describe(files: list[Path]) -> tuple[list[tuple[int, int]], Counter, list[tuple[str, str]]]:
    sizes, modes = [], Counter()
    bad = screen(files, strict=False, desc="images", check=undecodable)
    for f in files:
        if f in bad:
            continue
        with open_image(f) as img:
            sizes.append(img.size)
            modes[img.mode] += 1
    return sizes, modes, [(str(p), why) for p, why in bad.items()]


def check_dataset(path: str) -> dict[str, Any]:
    """Class folders (or a train/val split of them): images per class, sizes, problems."""
    fmt = detect_format(path, among=TASK_FORMATS[TaskName.CLASSIFY])
    if fmt is DataFormat.DIGITS:
        return {
            "path": "digits",
            "layout": "built-in",
            "images": 1797,
            "classes": 10,
            "problems": [],
        }
    root = Path(path)
    if not root.exists():
        raise RecogError(f"{path}: no such file or directory")
    if fmt is not DataFormat.CLASS_FOLDERS:
        raise RecogError(f"{path}: data check expects a directory of class folders")
    split_dirs = {s: root / s for s in SPLIT_NAMES if (root / s).is_dir()} or {"all": root}
    report: dict[str, Any] = {
        "path": str(root),
        "layout": "splits" if "all" not in split_dirs else "class folders",
        "splits": {},
        "problems": [],
    }
    all_sizes: list[tuple[int, int]] = []
    modes: Counter = Counter()
    corrupt: list[tuple[str, str]] = []
    ignored: list[str] = []
    for split, folder in split_dirs.items():
        counts = {}
        for cls in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = walk_files(cls)
            images = [p for p in files if is_image_file(p)]
            ignored += [str(p) for p in files if not is_image_file(p)]
            sizes, m, bad = _describe(images)
            all_sizes += sizes
            modes += m
            corrupt += bad
            counts[cls.name] = len(images) - len(bad)
        report["splits"][split] = counts
        nonempty = [c for c, n in counts.items() if n]
        if len(nonempty) < 2 and split != "val" and split != "test":
            report["problems"].append(
                f"{folder}: needs at least 2 classes with images, found {len(nonempty)}"
            )
        for cls, n in counts.items():
            if n == 0:
                report["problems"].append(f"{folder / cls}: class folder has no readable images")
    report["problems"] += [f"{p}: {why}" for p, why in corrupt]
    report["corrupt"] = [{"path": p, "reason": why} for p, why in corrupt]
    report["ignored_files"] = len(ignored)
    report["modes"] = dict(modes)
    if all_sizes:
        ws, hs = [w for w, _ in all_sizes], [h for _, h in all_sizes]
        report["width"] = {"min": min(ws), "median": statistics.median(ws), "max": max(ws)}
        report["height"] = {"min": min(hs), "median": statistics.median(hs), "max": max(hs)}
    report["images"] = sum(sum(c.values()) for c in report["splits"].values())
    return report


# COCO's size classes (pixels of box area) and a finer histogram of the box side.
SIDE_BINS = (0, 8, 16, 32, 64, 128, 256, 512, 10**9)


def detection_stats(path: str | Path) -> dict[str, Any]:
    """A detection annotation set: images, negatives, objects per class, box sizes."""
    ann = read_detection(path)
    bad = screen([r.path for r in ann.records], strict=False, desc="images", check=undecodable)
    boxes = [r.boxes for r in ann.records if len(r.boxes)]
    labels = (
        torch.cat([r.labels for r in ann.records])
        if ann.records
        else torch.zeros(0, dtype=torch.int64)
    )
    counts = torch.bincount(labels, minlength=len(ann.class_names)).tolist()
    all_boxes = torch.cat(boxes) if boxes else torch.zeros((0, 4))
    wh = (all_boxes[:, 2:] - all_boxes[:, :2]).clamp(min=0)
    area = wh.prod(1)
    side = area.sqrt()
    hist = {}
    for lo, hi in zip(SIDE_BINS[:-1], SIDE_BINS[1:], strict=True):
        key = f"{lo}-{hi}px" if hi < 10**9 else f">={lo}px"
        hist[key] = int(((side >= lo) & (side < hi)).sum())
    return {
        "path": str(path),
        "task": "detect",
        "images": len(ann.records),
        "negatives": sum(1 for r in ann.records if len(r.boxes) == 0),
        "objects": int(labels.numel()),
        "objects_per_class": dict(zip(ann.class_names, counts, strict=True)),
        "coco_sizes": {
            "small": int((area < 32**2).sum()),
            "medium": int(((area >= 32**2) & (area < 96**2)).sum()),
            "large": int((area >= 96**2).sum()),
        },
        "box_side_histogram": hist,
        "corrupt": [{"path": str(p), "reason": why} for p, why in bad.items()],
        "problems": list(ann.warnings) + [f"{p}: {why}" for p, why in bad.items()],
    }


def mask_report(path: str | Path, *, classes: str | None = None) -> dict[str, Any]:
    """`recog data check|stats` for a mask dataset: counts, sizes, pixel shares, problems.

    Every pair is decoded; each problem is one line and nothing is raised for
    per-file problems (a layout problem, e.g. no images/, still raises).
    """
    root = Path(path)
    problems: list[str] = []
    try:
        pairs = all_pairs(root)
    except RecogError as exc:
        return {"path": str(root), "task": "segment", "images": 0, "problems": [str(exc)]}
    try:
        names, decode = resolve_classes(pairs, root, classes)
    except RecogError as exc:
        return {"path": str(root), "task": "segment", "images": len(pairs), "problems": [str(exc)]}
    pixels: Counter = Counter()
    sizes: list[tuple[int, int]] = []
    images_with: Counter = Counter()
    for pair in pairs:
        try:
            image, mask = load_pair(pair, decode)
        except RecogError as exc:
            problems.append(str(exc))
            continue
        sizes.append((int(image.shape[2]), int(image.shape[1])))
        counts = torch.bincount(mask.flatten(), minlength=256)
        for k in range(len(names)):
            pixels[names[k]] += int(counts[k])
            images_with[names[k]] += int(counts[k] > 0)
        pixels["(ignore)"] += int(counts[IGNORE_INDEX])
    total = max(1, sum(pixels.values()))
    report: dict[str, Any] = {
        "path": str(root),
        "task": "segment",
        "layout": "images/ + masks/",
        "encoding": "binary 0/255" if decode.binary else "class ids",
        "classes": names,
        "images": len(pairs),
        "pixel_fraction": {k: round(v / total, 6) for k, v in pixels.items()},
        "images_per_class": dict(images_with),
        "problems": problems,
    }
    if sizes:
        ws, hs = [w for w, _ in sizes], [h for _, h in sizes]
        report["width"] = {"min": min(ws), "max": max(ws)}
        report["height"] = {"min": min(hs), "max": max(hs)}
    return report


def data_report(path: str, *, classes: str | None = None) -> dict[str, Any]:
    """What `recog data check|stats PATH` prints (with `problems`): the report of the task
    the data holds (`classes` names a mask folder's classes; the others have theirs)."""
    reports = {
        TaskName.CLASSIFY: lambda: check_dataset(path),
        TaskName.DETECT: lambda: detection_stats(path),
        TaskName.SEGMENT: lambda: mask_report(path, classes=classes),
    }
    return reports[infer_task(path)]()
