"""Segmentation metrics.

`SemanticAccumulator` sums a (C, C) confusion matrix over every scored pixel
(ground truth 255 = ignore is skipped) and reduces it to IoU, Dice/F1 and
pixel accuracy.  A class's IoU is TP / (TP + FP + FN); a class absent from
both truth and prediction has no IoU and is left out of the means (as
mmsegmentation's nanmean).  Merging ranks is adding matrices, so the numbers
do not depend on batching or sharding; tests/metrics/test_segmentation.py
checks them against a plain numpy confusion matrix.

`InstanceAccumulator` gives COCO mask AP through pycocotools' COCOeval
(`iouType="segm"`, masks as RLE) and box AP through `DetectionAccumulator`.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recog.metrics.base import Accumulator, Figure
from recog.metrics.detection import DetectionAccumulator
from recog.types import IGNORE_INDEX, Prediction, Target


class SemanticAccumulator(Accumulator):
    """Per-pixel class ids in, mIoU / Dice / pixel accuracy out."""

    def __init__(self, class_names: list[str], *, ignore_index: int = IGNORE_INDEX) -> None:
        self.class_names = list(class_names)
        self.ignore_index = ignore_index
        c = len(self.class_names)
        #: rows = true class, columns = predicted class, pixel counts
        self.confusion = torch.zeros((c, c), dtype=torch.int64)

    def update(self, predictions: Sequence[Prediction], targets: Sequence[Target]) -> None:
        """prediction.mask and target.mask: (H, W) int class ids, same size."""
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        c = self.num_classes
        for pred, target in zip(predictions, targets, strict=True):
            truth, guess = target.mask.cpu().long(), pred.mask.cpu().long()
            if truth.shape != guess.shape:
                raise ValueError(f"prediction {tuple(guess.shape)} vs target {tuple(truth.shape)}")
            valid = truth != self.ignore_index
            truth, guess = truth[valid], guess[valid]
            if truth.numel() and (int(truth.max()) >= c or int(truth.min()) < 0):
                raise ValueError(f"target class ids must lie in [0, {c}) or be {self.ignore_index}")
            if guess.numel() and (int(guess.max()) >= c or int(guess.min()) < 0):
                raise ValueError(f"predicted class ids must lie in [0, {c})")
            self.confusion += torch.bincount(truth * c + guess, minlength=c * c).view(c, c)

    def merge(self, other: Accumulator) -> None:
        if not isinstance(other, SemanticAccumulator) or other.num_classes != self.num_classes:
            raise TypeError("can only merge a SemanticAccumulator with the same classes")
        self.confusion += other.confusion

    def compute(self) -> dict[str, Any]:
        """miou, dice (mean F1), pixel_acc, per_class (IoU), per_class_dice, num_pixels."""
        cm = self.confusion.double()
        tp = cm.diag()
        fp = cm.sum(0) - tp
        fn = cm.sum(1) - tp
        union = tp + fp + fn
        present = union > 0
        iou = torch.where(present, tp / union.clamp(min=1), torch.nan)
        dice = torch.where(present, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.nan)
        total = float(cm.sum())
        return {
            "miou": float(iou[present].mean()) if present.any() else 0.0,
            "dice": float(dice[present].mean()) if present.any() else 0.0,
            "pixel_acc": float(tp.sum()) / total if total else 0.0,
            "per_class": {n: float(iou[k]) for k, n in enumerate(self.class_names) if present[k]},
            "per_class_dice": {
                n: float(dice[k]) for k, n in enumerate(self.class_names) if present[k]
            },
            "num_pixels": int(total),
        }

    def figures(self, class_names: list[str]) -> list[Figure]:
        """The pixel confusion matrix, row-normalized; none before any pixel."""
        if int(self.confusion.sum()) == 0:
            return []
        return [
            Figure(
                "confusion",
                "confusion_matrix",
                {
                    "matrix": self.confusion.tolist(),
                    "labels": list(self.class_names),
                    "titles": ("pixel confusion (row-normalized)",),
                },
            )
        ]


def encode_rle(masks: Tensor) -> list[dict[str, Any]]:
    """(N, H, W) bool -> COCO compressed RLEs with `counts` as str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0:
        return []
    array = np.asfortranarray(masks.cpu().numpy().transpose(1, 2, 0).astype(np.uint8))
    rles = mask_utils.encode(array)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


class InstanceAccumulator(Accumulator):
    """Per-image instances in; COCO mask AP (pycocotools) and box AP out.

    compute(): mask_map, mask_map50, mask_map75, per_class (class -> mask AP),
    and the box metrics of `DetectionAccumulator` (map, map50, map75, ...,
    with its per-class box AP as per_class_box).
    """

    def __init__(self, class_names: list[str]) -> None:
        self.class_names = list(class_names)
        self.boxes = DetectionAccumulator(class_names)
        # per image: (height, width, gt RLEs, gt labels, dt RLEs, dt labels, dt scores)
        self._images: list[tuple[int, int, list, list[int], list, list[int], list[float]]] = []

    def update(self, predictions: Sequence[Prediction], targets: Sequence[Target]) -> None:
        self.boxes.update(predictions, targets)
        for pred, target in zip(predictions, targets, strict=True):
            gt_masks = (
                target.masks
                if target.masks is not None
                else torch.zeros((0, 1, 1), dtype=torch.bool)
            )
            dt_masks = (
                pred.masks
                if pred.masks is not None
                else torch.zeros((0, *gt_masks.shape[-2:]), dtype=torch.bool)
            )
            h, w = gt_masks.shape[-2:] if len(gt_masks) else dt_masks.shape[-2:]
            self._images.append(
                (
                    int(h),
                    int(w),
                    encode_rle(gt_masks),
                    [int(v) for v in target.labels.reshape(-1)]
                    if target.labels is not None
                    else [],
                    encode_rle(dt_masks),
                    [int(v) for v in pred.labels.reshape(-1)] if pred.labels is not None else [],
                    [float(v) for v in pred.scores.reshape(-1)] if pred.scores is not None else [],
                )
            )

    def merge(self, other: Accumulator) -> None:
        if not isinstance(other, InstanceAccumulator):
            raise TypeError(f"cannot merge {type(other).__name__} into InstanceAccumulator")
        self.boxes.merge(other.boxes)
        self._images.extend(other._images)

    def _mask_precision(self) -> np.ndarray | None:
        """COCOeval segm precision (T, R, K, A, M), or None without ground truth."""
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        images, gts, dts = [], [], []
        for i, (h, w, g_rle, g_lab, d_rle, d_lab, d_score) in enumerate(self._images, start=1):
            images.append({"id": i, "height": h, "width": w})
            for rle, label in zip(g_rle, g_lab, strict=True):
                gts.append(
                    {
                        "id": len(gts) + 1,
                        "image_id": i,
                        "category_id": label + 1,
                        "segmentation": rle,
                        "area": float(mask_utils.area(rle)),
                        "bbox": mask_utils.toBbox(rle).tolist(),
                        "iscrowd": 0,
                    }
                )
            for rle, label, score in zip(d_rle, d_lab, d_score, strict=True):
                dts.append(
                    {"image_id": i, "category_id": label + 1, "segmentation": rle, "score": score}
                )
        if not gts:
            return None
        categories = [{"id": k + 1, "name": n} for k, n in enumerate(self.class_names)]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO()
            coco_gt.dataset = {"images": images, "categories": categories, "annotations": gts}
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dts) if dts else COCO()
            if not dts:
                return np.zeros((10, 101, len(self.class_names), 4, 3))
            ev = COCOeval(coco_gt, coco_dt, iouType="segm")
            ev.evaluate()
            ev.accumulate()
        return np.asarray(ev.eval["precision"])

    def compute(self) -> dict[str, Any]:
        box = self.boxes.compute()
        out: dict[str, Any] = {"mask_map": 0.0, "mask_map50": 0.0, "mask_map75": 0.0}
        per_class: dict[str, float] = {}
        precision = self._mask_precision()
        if precision is not None:
            p = precision[..., 0, -1]  # (T, R, K) all areas, most detections

            def mean(values: np.ndarray) -> float:
                valid = values[values > -1]
                return float(valid.mean()) if valid.size else 0.0

            out["mask_map"], out["mask_map50"], out["mask_map75"] = mean(p), mean(p[0]), mean(p[5])
            per_class = {
                n: mean(p[:, :, k])
                for k, n in enumerate(self.class_names)
                if (p[:, :, k] > -1).any()
            }
        return {
            **{k: v for k, v in box.items() if k != "per_class"},
            "per_class_box": box.get("per_class", {}),
            **out,
            "per_class": per_class,
        }

    def figures(self, class_names: list[str]) -> list[Figure]:
        return self.boxes.figures(class_names)
