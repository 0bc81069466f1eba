"""`recog data check|stats`: what is in a classification dataset and what is wrong with it.

Decodes nothing fully: image headers give sizes and modes, and a Pillow
`verify()` finds unreadable files.  Problems are one line each.
"""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from recog.data.class_folders import SPLIT_NAMES
from recog.data.images import is_image_file, walk_files
from recog.errors import RecogError


def _describe(files: list[Path]) -> tuple[list[tuple[int, int]], Counter, list[tuple[str, str]]]:
    sizes, modes, corrupt = [], Counter(), []
    for f in files:
        try:
            if f.stat().st_size == 0:
                raise ValueError("empty file (0 bytes)")
            with Image.open(f) as img:
                sizes.append(img.size)
                modes[img.mode] += 1
                img.verify()
        except Exception as exc:  # noqa: BLE001 - any failure means an unusable file
            corrupt.append((str(f), str(exc).split("\n")[0] or exc.__class__.__name__))
    return sizes, modes, corrupt


def check_dataset(path: str) -> dict[str, Any]:
    if path == "digits":
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
    if not root.is_dir():
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
    report["problems"] += [f"{p}: cannot decode image ({why})" for p, why in corrupt]
    report["corrupt"] = [{"path": p, "reason": why} for p, why in corrupt]
    report["ignored_files"] = len(ignored)
    report["modes"] = dict(modes)
    if all_sizes:
        ws, hs = [w for w, _ in all_sizes], [h for _, h in all_sizes]
        report["width"] = {"min": min(ws), "median": statistics.median(ws), "max": max(ws)}
        report["height"] = {"min": min(hs), "median": statistics.median(hs), "max": max(hs)}
    report["images"] = sum(sum(c.values()) for c in report["splits"].values())
    return report
