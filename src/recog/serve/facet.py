"""What the server, its web page and `recog data export-feedback` ask of a task.

`SERVE.of(task)` says what a user may correct on a wrong answer (the page's
feedback form: one class, or labelled boxes), whether the page offers a top-k
field, and writes the users' corrections as a training set.  Semantic and
instance segmentation give none of it: their page has no correction form and
`export-feedback` says their corrections are not exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from recog.data.formats.coco import write_coco
from recog.data.formats.records import DetectionAnnotations, DetectionRecord
from recog.io import atomic_write_bytes
from recog.tasks.facets import FacetTable
from recog.types import CorrectedExample, safe_file_name


class ServeFacet(Protocol):
    #: what a user may correct on a wrong answer (GET /v1/models `correction`)
    correction: Literal["label", "boxes"]
    #: whether a prediction ranks the classes, so a caller may ask for the top k
    ranks_classes: bool

    def export(self, examples: Sequence[CorrectedExample], folder: Path) -> dict[str, Any]:
        """Write users' corrections of this task's predictions under `folder` as a training set.

        `examples` are the corrections whose image was kept, one per image
        (its newest).  Returns the export's summary: `format`, `images` and
        what else a user should see.
        """
        ...


class ClassifyServe:
    correction: Literal["label", "boxes"] = "label"
    ranks_classes = True

    def export(self, examples: Sequence[CorrectedExample], folder: Path) -> dict[str, Any]:
        """Class folders, `folder/<label>/<sha>.<ext>`: trainable with `recog train --data folder`."""
        written = 0
        for ex in examples:
            if ex.label is None:
                continue
            path = folder / safe_file_name(ex.label) / ex.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, ex.image or b"")
            written += 1
        return {"format": "class folders", "images": written}


class DetectServe:
    correction: Literal["label", "boxes"] = "boxes"
    ranks_classes = False

    def export(self, examples: Sequence[CorrectedExample], folder: Path) -> dict[str, Any]:
        """COCO, `folder/annotations.json` and `folder/images/`, classes named by the corrections."""
        examples = [ex for ex in examples if ex.boxes is not None]
        names = sorted({b["label"] for ex in examples for b in ex.boxes or []})
        index = {n: i for i, n in enumerate(names)}
        records = []
        for ex in examples:
            path = folder / "images" / ex.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, ex.image or b"")
            boxes = ex.boxes or []
            xyxy = torch.tensor([b["box"] for b in boxes], dtype=torch.float32).reshape(-1, 4)
            labels = torch.tensor([index[b["label"]] for b in boxes], dtype=torch.int64)
            records.append(
                DetectionRecord(
                    path=path, width=ex.width, height=ex.height, boxes=xyxy, labels=labels
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


# Mask R-CNN's instance task is named "segment": it declines with the semantic one (the
# page's box form corrects detections; its corrections of instances are not exported)
SERVE: FacetTable[ServeFacet] = FacetTable(
    "corrections of {task} models are not exported",
    classify=ClassifyServe, detect=DetectServe,
)  # fmt: skip
