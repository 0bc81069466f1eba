"""`recog data export-feedback`: user corrections from the history store -> a training set.

Classification corrections become a class-folder root (`OUT/<label>/<sha>.jpg`,
trainable with `recog train --data OUT`, split by `--val-split`); detection
corrections become COCO (`OUT/annotations.json` + `OUT/images/`).  Only
predictions whose image was kept (`recog serve --keep-images`) can be
exported; the others are counted and reported.  An image predicted several
times counts once, with its newest correction.  With feedback on several
models and no `model` given, each model gets its own folder `OUT/<model>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recog.errors import RecogError
from recog.io import atomic_write_bytes
from recog.serve.store import CorrectedExample, Store

_SUFFIX = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
}


def export_feedback(db_url: str, out: str | Path, *, model: str | None = None) -> dict[str, Any]:
    """Write the corrected examples under `out`; returns a summary per model."""
    out = Path(out)
    store = Store(db_url)
    try:
        by_model: dict[str, dict[str, CorrectedExample]] = {}
        for ex in store.corrected(model=model):
            by_model.setdefault(ex.model, {})[ex.image_sha256] = ex  # newest wins
    finally:
        store.close()
    if not by_model:
        raise RecogError(
            f"{db_url}: no corrected predictions" + (f" for model {model!r}" if model else "")
        )
    summary: dict[str, Any] = {}
    for name, examples in by_model.items():
        folder = out if len(by_model) == 1 else out / _safe(name)
        summary[name] = _export_model(list(examples.values()), folder)
    return summary


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "model"


def _export_model(examples: list[CorrectedExample], folder: Path) -> dict[str, Any]:
    task = examples[0].task
    kept = [ex for ex in examples if ex.image is not None]
    info: dict[str, Any] = {
        "task": task,
        "path": str(folder),
        "corrections": len(examples),
        "without_image": len(examples) - len(kept),
    }
    if task == "classify":
        written = 0
        for ex in kept:
            if ex.label is None:
                continue
            path = folder / _safe(ex.label) / _file_name(ex)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, ex.image or b"")
            written += 1
        info.update(format="class folders", images=written)
    elif task == "detect":
        info.update(_export_coco([ex for ex in kept if ex.boxes is not None], folder))
    else:
        info.update(format=None, images=0, note=f"corrections of {task} models are not exported")
    return info


def _file_name(ex: CorrectedExample) -> str:
    return ex.image_sha256[:20] + _SUFFIX.get(ex.media_type or "", ".img")


def _export_coco(examples: list[CorrectedExample], folder: Path) -> dict[str, Any]:
    from recog.data.formats.coco import write_coco
    from recog.data.formats.records import DetectionAnnotations, DetectionRecord

    names = sorted({b["label"] for ex in examples for b in ex.boxes or []})
    index = {n: i for i, n in enumerate(names)}
    records = []
    for ex in examples:
        path = folder / "images" / _file_name(ex)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, ex.image or b"")
        boxes = ex.boxes or []
        records.append(
            DetectionRecord(
                path=path,
                width=ex.width,
                height=ex.height,
                boxes=torch.tensor([b["box"] for b in boxes], dtype=torch.float32).reshape(-1, 4),
                labels=torch.tensor([index[b["label"]] for b in boxes], dtype=torch.int64),
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_coco(DetectionAnnotations(records, names), folder / "annotations.json")
    return {
        "format": "coco",
        "images": len(records),
        "boxes": sum(len(ex.boxes or []) for ex in examples),
        "classes": names,
    }
