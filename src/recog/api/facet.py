"""What a prediction's outputs ask of a task: table columns, CSV rows, a summary line, files.

`OUTPUT.of(task)` answers for each task how one prediction (or its
`Task.to_record`) is written where a user reads it: the columns of `recog
predict --out`'s table (`recog.batch.rows`' one schema), the rows of `--format
csv` and `recog.api.results.to_df`, the result column of the CLI's table (the
server compares two of them to say whether an attack changed the answer), and
the files `predict --save-dir` writes beside the drawn image.

It lives in api/ rather than batch/ because `recog.api.results.to_df` asks it,
and batch/, serve/ and cli/ all sit above api/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import torch

from recog.io import atomic_write_bytes, atomic_write_text
from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.drawing import palette_png
from recog.tasks.facets import FacetTable
from recog.tasks.instance import InstanceSegmentTask
from recog.tasks.segment import SegmentTask
from recog.types import Prediction


class OutputFacet(Protocol):
    def columns(self, task: Task, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        """One image's values in `recog predict --out`'s table (`recog.batch.rows`' one
        schema for every task): any of `labels` and `scores` (lists), `boxes` (x1, y1, x2,
        y2 in pixels), `masks` ({"label", "size": [h, w], "counts": COCO RLE}), `unknown`,
        `ood_score`; unset columns stay null."""
        ...

    def csv_rows(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """`recog predict --format csv` rows for one `to_record` (with its `path`)."""
        ...

    def summary(self, record: dict[str, Any]) -> str:
        """The result column of `recog predict`'s table for one `to_record`."""
        ...

    def save(self, task: Task, prediction: Prediction, save_dir: Path, stem: str) -> list[Path]:
        """Files `predict --save-dir` writes beside the drawn image (mask PNGs, JSON)."""
        ...


def plain_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record's plain values (no lists or mappings): a CSV row's start."""
    return {k: v for k, v in record.items() if not isinstance(v, list | dict)}


class ClassifyOutput:
    """The top-k classes (and the out-of-distribution verdict where the run has a rule)."""

    def columns(
        self, task: ClassifyTask, prediction: Prediction, *, top_k: int = 5
    ) -> dict[str, Any]:
        """The top-k classes and scores; `unknown` and `ood_score` where the run has a rule."""
        values, indices = task.top(prediction, top_k)
        columns: dict[str, Any] = {
            "labels": [task.class_names[int(i)] for i in indices],
            "scores": [float(v) for v in values],
        }
        if prediction.ood_score is not None:
            columns["unknown"] = bool(prediction.unknown)
            columns["ood_score"] = float(prediction.ood_score)
        return columns

    def csv_rows(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        row = plain_row(record)
        row["top_k"] = ";".join(f"{t['label']}:{t['score']:.4f}" for t in record["top_k"])
        return [row]

    def summary(self, record: dict[str, Any]) -> str:
        ranked = ", ".join(f"{t['label']} {t['score']:.3f}" for t in record["top_k"])
        if record.get("unknown"):
            return f"unknown (ood score {record['ood_score']:.4g}); nearest: {ranked}"
        return ranked

    def save(self, task: Task, prediction: Prediction, save_dir: Path, stem: str) -> list[Path]:
        return []


class DetectOutput:
    """The shown boxes (above the threshold the prediction was selected at, as drawn)."""

    def columns(
        self, task: DetectTask, prediction: Prediction, *, top_k: int = 5
    ) -> dict[str, Any]:
        """The detections above the display threshold (as drawn): labels, scores, boxes."""
        keep = task.shown(prediction)
        return {
            "labels": [task.class_names[int(c)] for c in prediction.labels[keep]],
            "scores": [float(s) for s in prediction.scores[keep]],
            "boxes": [[float(v) for v in b] for b in prediction.boxes[keep]],
        }

    def csv_rows(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per detection (x1, y1, x2, y2 in pixels); a bare row when none."""
        return [
            {
                "path": record["path"],
                "label": d["label"],
                "score": d["score"],
                "x1": d["box"][0],
                "y1": d["box"][1],
                "x2": d["box"][2],
                "y2": d["box"][3],
            }
            for d in record["detections"]
        ] or [{"path": record["path"]}]

    def summary(self, record: dict[str, Any]) -> str:
        found = record["detections"]
        shown = ", ".join(f"{d['label']} {d['score']:.2f}" for d in found[:6])
        return (
            f"{len(found)} found"
            + (f": {shown}" if shown else "")
            + (" ..." if len(found) > 6 else "")
        )

    def save(self, task: Task, prediction: Prediction, save_dir: Path, stem: str) -> list[Path]:
        return []


class InstanceOutput(DetectOutput):
    """A detector's outputs, each shown detection with its mask."""

    def columns(
        self, task: InstanceSegmentTask, prediction: Prediction, *, top_k: int = 5
    ) -> dict[str, Any]:
        """The shown detections' columns and each one's mask as a COCO RLE."""
        from recog.metrics.segmentation import encode_rle

        columns = super().columns(task, prediction, top_k=top_k)
        keep = task.shown(prediction)
        labels = prediction.labels[keep]
        columns["masks"] = [
            {"label": task.class_names[int(c)], "size": [int(v) for v in rle["size"]],
             "counts": rle["counts"]}
            for c, rle in zip(labels, encode_rle(prediction.masks[keep]), strict=True)
        ]  # fmt: skip
        return columns

    def save(
        self, task: InstanceSegmentTask, prediction: Prediction, save_dir: Path, stem: str
    ) -> list[Path]:
        """`<stem>.json`: COCO-style results with RLE masks (all detections kept)."""
        from recog.metrics.segmentation import encode_rle

        rles = encode_rle(prediction.masks)
        results = [
            {
                "file_name": stem,
                "category_id": int(c) + 1,
                "category": task.class_names[int(c)],
                "bbox": [
                    round(float(b[0]), 2),
                    round(float(b[1]), 2),
                    round(float(b[2] - b[0]), 2),
                    round(float(b[3] - b[1]), 2),
                ],
                "score": round(float(s), 6),
                "segmentation": rle,
            }
            for b, c, s, rle in zip(
                prediction.boxes, prediction.labels, prediction.scores, rles, strict=True
            )
        ]
        out = save_dir / f"{stem}.json"
        atomic_write_text(out, json.dumps(results))
        return [out]


class SegmentOutput:
    """The classes present per pixel: their shares, and the class mask itself."""

    def columns(
        self, task: SegmentTask, prediction: Prediction, *, top_k: int = 5
    ) -> dict[str, Any]:
        """The classes present, their fraction of the pixels, and one COCO RLE mask each."""
        from recog.metrics.segmentation import encode_rle

        mask = prediction.mask
        counts = task.pixel_counts(mask)
        present = [k for k in range(task.num_classes) if counts[k] > 0]
        regions = (
            torch.stack([mask == k for k in present])
            if present
            else torch.zeros((0, *mask.shape), dtype=torch.bool)
        )
        total = max(1, mask.numel())
        return {
            "labels": [task.class_names[k] for k in present],
            "scores": [float(counts[k]) / total for k in present],
            "masks": [
                {
                    "label": task.class_names[k],
                    "size": [int(v) for v in rle["size"]],
                    "counts": rle["counts"],
                }
                for k, rle in zip(present, encode_rle(regions), strict=True)
            ],  # fmt: skip
        }

    def csv_rows(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per image: its size and the fraction of pixels of each class."""
        row = plain_row(record)
        seg = record["segmentation"]
        row |= {"width": seg["width"], "height": seg["height"]}
        row |= {f"fraction_{k}": v for k, v in seg.get("pixel_fraction", {}).items()}
        return [row]

    def summary(self, record: dict[str, Any]) -> str:
        shares = sorted(record["segmentation"]["pixel_fraction"].items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {share:.1%}" for name, share in shares[:6] if share > 0)

    def save(
        self, task: SegmentTask, prediction: Prediction, save_dir: Path, stem: str
    ) -> list[Path]:
        """`<stem>_mask.png`: the class id of every pixel, as a palette PNG that shows each
        class in its drawing colour (`recog.tasks.drawing.palette_png`)."""
        out = save_dir / f"{stem}_mask.png"
        atomic_write_bytes(out, palette_png(prediction.mask, task.num_classes))
        return [out]


OUTPUT: FacetTable[OutputFacet] = FacetTable(
    "{task} predictions have no table columns",
    classify=ClassifyOutput, detect=DetectOutput, segment=SegmentOutput, instance=InstanceOutput,
)  # fmt: skip
