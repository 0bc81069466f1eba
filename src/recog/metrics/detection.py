"""Detection metrics: `DetectionAccumulator` gives the COCO box protocol (one job: the protocol and its confusion matrix share the matching) (mAP@[.5:.95],
AP50, AP75, AP by object size, AR@100, AP per class) plus PR curves, a
confusion matrix with a background class, and the calibration of box scores
(`box_ece` and its reliability diagram, `box_calibration.py`).

The accumulator keeps every image's boxes on the CPU and reduces them once, in
`compute`, with faster-coco-eval's C++ COCOeval: the numbers are pycocotools'
to 1e-6 (tests/metrics/test_detection.py) and do not depend on how the pass was
batched or split across ranks; bench/detect_eval.py measures the speed-up.

COCO records built here: image ids are 1, 2, ... in `update` order, category id
= label index + 1 (0 is left free, as in COCO), annotation ids start at 1 (COCO
reads id 0 as "unmatched"), ground-truth area = box w*h, iscrowd 0, and image
width/height 0 (a `Target` carries no size; box evaluation does not read it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recog.metrics.base import Accumulator, Figure
from recog.types import Prediction, Target

_AREAS = ("all", "small", "medium", "large")  # COCOeval's default area ranges, in its order


@dataclass(frozen=True)
class _Evaluation:
    """What `compute` and `figures` read from one COCOeval run.

    precision: (T, R, K, A, M) interpolated precision, -1 where undefined
        (T IoU thresholds .50:.95, R=101 recall points, K classes, A=4 areas, M=3 max-dets).
    recall: (T, K, A, M) recall, -1 where undefined.
    """

    precision: np.ndarray
    recall: np.ndarray
    rec_thrs: np.ndarray


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while COCO builds ~10^6 small dicts that hold no
    cycles: measured here, the records of 5,000 images x 100 detections took 1.9 s with
    it running and 0.4 s without."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _quiet(*_: Any, **__: Any) -> None:
    return None


def _mean_valid(values: np.ndarray) -> float:
    """COCO's summary: the mean of the defined (> -1) entries, -1 when there are none."""
    valid = values[values > -1]
    return float(valid.mean()) if valid.size else -1.0


def _fraction(value: float) -> float:
    """An undefined COCO value (-1: no ground truth in that range) reports as 0.0."""
    return value if value >= 0 else 0.0


class DetectionAccumulator(Accumulator):
    """Per-image boxes in, COCO box metrics out.

    class_names: the C class names, in label order (keys of `per_class*`).
    max_dets: detections per image (and class) that COCOeval keeps, by score;
        the AR key is `mar_{max_dets}` (`mar_100` by default).
    """

    def __init__(self, class_names: list[str], *, max_dets: int = 100) -> None:
        if not class_names:
            raise ValueError("DetectionAccumulator needs at least one class name")
        if max_dets < 1:
            raise ValueError(f"max_dets must be >= 1, got {max_dets}")
        self.class_names = list(class_names)
        self.max_dets = int(max_dets)
        # one entry per image, all on the CPU: boxes (N, 4) float32 xyxy, labels (N,) int64,
        # scores (N,) float32
        self._gt_boxes: list[Tensor] = []
        self._gt_labels: list[Tensor] = []
        self._dt_boxes: list[Tensor] = []
        self._dt_labels: list[Tensor] = []
        self._dt_scores: list[Tensor] = []
        self._version = 0  # bumped by update/merge; keys the cached evaluation
        self._cached: tuple[int, _Evaluation | None] | None = None
        self._matches: tuple[int, Tensor, Tensor] | None = None

    @property
    def num_images(self) -> int:
        return len(self._gt_boxes)

    @property
    def num_ground_truth(self) -> int:
        return sum(int(b.shape[0]) for b in self._gt_boxes)

    # ------------------------------------------------------------- collecting

    def update(self, predictions: Sequence[Prediction], targets: Sequence[Target]) -> None:
        """One (prediction, target) pair per image.

        prediction: boxes (N, 4) float xyxy pixels, labels (N,) int64, scores (N,).
        target: boxes (G, 4) float xyxy pixels, labels (G,) int64; None fields mean no boxes.
        """
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        for pred, target in zip(predictions, targets, strict=True):
            gt_boxes, gt_labels = self._boxes_and_labels(target.boxes, target.labels, "target")
            dt_boxes, dt_labels = self._boxes_and_labels(pred.boxes, pred.labels, "prediction")
            if pred.scores is None:
                if dt_boxes.shape[0]:
                    raise ValueError("a detection prediction needs scores")
                dt_scores = torch.zeros(0)
            else:
                dt_scores = pred.scores.detach().to("cpu", torch.float32).reshape(-1)
            if dt_scores.shape[0] != dt_boxes.shape[0]:
                raise ValueError(f"{dt_scores.shape[0]} scores for {dt_boxes.shape[0]} boxes")
            self._gt_boxes.append(gt_boxes)
            self._gt_labels.append(gt_labels)
            self._dt_boxes.append(dt_boxes)
            self._dt_labels.append(dt_labels)
            self._dt_scores.append(dt_scores)
        self._version += 1

    def _boxes_and_labels(
        self, boxes: Tensor | None, labels: Tensor | None, what: str
    ) -> tuple[Tensor, Tensor]:
        b = (
            torch.zeros(0, 4)
            if boxes is None
            else boxes.detach().to("cpu", torch.float32).reshape(-1, 4)
        )
        lab = (
            torch.zeros(0, dtype=torch.int64)
            if labels is None
            else labels.detach().to("cpu", torch.int64).reshape(-1)
        )
        if lab.shape[0] != b.shape[0]:
            raise ValueError(f"{what}: {lab.shape[0]} labels for {b.shape[0]} boxes")
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) >= self.num_classes):
            raise ValueError(f"{what}: labels must lie in [0, {self.num_classes})")
        return b, lab

    def merge(self, other: Accumulator) -> None:
        """Append another accumulator's images after this one's (ids follow on)."""
        self._check_merge(other)
        self._gt_boxes.extend(other._gt_boxes)
        self._gt_labels.extend(other._gt_labels)
        self._dt_boxes.extend(other._dt_boxes)
        self._dt_labels.extend(other._dt_labels)
        self._dt_scores.extend(other._dt_scores)
        self._version += 1

    # ------------------------------------------------------------ COCO records

    def coco_dicts(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The ground truth as a COCO dataset dict, and the detections as a COCO results list.

        Detections: {"image_id", "category_id", "bbox": [x, y, w, h], "score"}.  Fresh
        dicts on every call: COCO tools add keys to the dicts they are given.
        """
        n = self.num_images
        images = [{"id": i, "width": 0, "height": 0} for i in range(1, n + 1)]
        categories = [{"id": k + 1, "name": name} for k, name in enumerate(self.class_names)]
        annotations = [
            {
                "id": j,
                "image_id": image_id,
                "category_id": cat,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
            }
            for j, (image_id, cat, box) in enumerate(
                zip(*_columns(self._gt_boxes, self._gt_labels), strict=True), start=1
            )
        ]
        image_ids, cats, boxes = _columns(self._dt_boxes, self._dt_labels)
        scores = torch.cat(self._dt_scores).tolist() if n else []
        detections = [
            {"image_id": image_id, "category_id": cat, "bbox": box, "score": score}
            for image_id, cat, box, score in zip(image_ids, cats, boxes, scores, strict=True)
        ]
        gt = {"info": {}, "images": images, "categories": categories, "annotations": annotations}
        return gt, detections

    def _evaluate(self) -> _Evaluation | None:
        """Run COCOeval (bbox) once per state of the data; None without ground truth."""
        if self._cached is not None and self._cached[0] == self._version:
            return self._cached[1]
        with _gc_paused():
            result = self._run_cocoeval()
        self._cached = (self._version, result)
        return result

    def _run_cocoeval(self) -> _Evaluation | None:
        from faster_coco_eval import COCO, COCOeval_faster

        result: _Evaluation | None = None
        gt, detections = self.coco_dicts()
        if gt["annotations"]:
            coco_gt = COCO(print_function=_quiet)
            coco_gt.dataset = gt
            coco_gt.createIndex()
            # The fields COCO's loadRes would add, minus the polygon it draws for every box.
            for j, det in enumerate(detections, start=1):
                det.update(id=j, area=det["bbox"][2] * det["bbox"][3], iscrowd=0)
            coco_dt = COCO(print_function=_quiet)
            coco_dt.dataset = {
                "images": gt["images"],
                "categories": gt["categories"],
                "annotations": detections,
            }
            coco_dt.createIndex()
            ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_quiet)
            # COCOeval sorts maxDets and reads the last as "all kept": max_dets must stay last
            ev.params.maxDets = [m for m in (1, 10) if m < self.max_dets] + [self.max_dets]
            ev.evaluate()
            ev.accumulate()
            result = _Evaluation(
                precision=np.asarray(ev.eval["precision"]),
                recall=np.asarray(ev.eval["recall"]),
                rec_thrs=np.asarray(ev.params.recThrs),
            )
        return result

    # --------------------------------------------------------------- metrics

    def compute(self) -> dict[str, Any]:
        """COCO box metrics as python floats in [0, 1].

        map (AP@[.5:.95]), map50, map75, map_small/medium/large (area w*h below 32²,
        up to 96², above), mar_{max_dets} (AR at max_dets detections per image),
        per_class / per_class_ap50 (class name -> AP@[.5:.95] / AP@.5), num_images,
        num_ground_truth, per_class_num_ground_truth (every class).

        Classes without ground truth are omitted from `per_class` and `per_class_ap50`
        (their AP is undefined), so both stay NaN-free and their mean is `map`/`map50`.
        A size range without ground truth reports 0.0, and with no ground truth at
        all every AP/AR is 0.0.
        """
        gt_counts = (
            torch.bincount(torch.cat(self._gt_labels), minlength=self.num_classes).tolist()
            if self.num_images
            else [0] * self.num_classes
        )
        out: dict[str, Any] = {
            key: 0.0
            for key in (
                "map",
                "map50",
                "map75",
                "map_small",
                "map_medium",
                "map_large",
                f"mar_{self.max_dets}",
            )
        }
        out["per_class"] = {}
        out["per_class_ap50"] = {}
        evaluation = self._evaluate()
        if evaluation is not None:
            p = evaluation.precision[..., -1]  # (T, R, K, A) at max_dets
            # iouThrs are linspace(.5, .95, 10): index 0 is IoU .50, index 5 is .75
            out["map"] = _fraction(_mean_valid(p[..., 0]))
            out["map50"] = _fraction(_mean_valid(p[0, ..., 0]))
            out["map75"] = _fraction(_mean_valid(p[5, ..., 0]))
            for a, area in enumerate(_AREAS[1:], start=1):
                out[f"map_{area}"] = _fraction(_mean_valid(p[..., a]))
            out[f"mar_{self.max_dets}"] = _fraction(_mean_valid(evaluation.recall[:, :, 0, -1]))
            for k, name in enumerate(self.class_names):
                if gt_counts[k]:
                    out["per_class"][name] = _fraction(_mean_valid(p[:, :, k, 0]))
                    out["per_class_ap50"][name] = _fraction(_mean_valid(p[0, :, k, 0]))
        if sum(gt_counts):
            # how far a box's score is its chance of matching an object (box_calibration.py)
            out["box_ece"] = self.box_calibration()["ece"]
        out["num_images"] = self.num_images
        out["num_ground_truth"] = int(sum(gt_counts))
        out["per_class_num_ground_truth"] = dict(zip(self.class_names, gt_counts, strict=True))
        return out

    def confusion_matrix(
        self, *, score_threshold: float = 0.25, iou_threshold: float = 0.5
    ) -> Tensor:
        """(C+1, C+1) int64 counts; rows = true class, columns = predicted; index C = background.

        Per image, predictions with score >= score_threshold are matched one-to-one to
        ground truth, class-agnostic, greedily by highest IoU (>= iou_threshold).
        Row C counts unmatched predictions (false positives), column C unmatched ground
        truth (misses); cell (C, C) stays 0.
        """
        from torchvision.ops import box_iou

        c = self.num_classes
        matrix = torch.zeros(c + 1, c + 1, dtype=torch.int64)
        for gt_boxes, gt_labels, dt_boxes, dt_labels, dt_scores in zip(
            self._gt_boxes,
            self._gt_labels,
            self._dt_boxes,
            self._dt_labels,
            self._dt_scores,
            strict=True,
        ):
            keep = dt_scores >= score_threshold
            dt_boxes, dt_labels = dt_boxes[keep], dt_labels[keep]
            gt_true = gt_labels.clone()  # column of each ground truth, C when missed
            gt_pred = torch.full_like(gt_labels, c)
            dt_matched = torch.zeros(dt_labels.shape[0], dtype=torch.bool)
            if gt_boxes.shape[0] and dt_boxes.shape[0]:
                iou = box_iou(gt_boxes, dt_boxes)  # (G, D)
                g_idx, d_idx = torch.nonzero(iou >= iou_threshold, as_tuple=True)
                order = iou[g_idx, d_idx].argsort(descending=True, stable=True)
                used_g: set[int] = set()
                for g, d in zip(g_idx[order].tolist(), d_idx[order].tolist(), strict=True):
                    if g in used_g or bool(dt_matched[d]):
                        continue
                    used_g.add(g)
                    dt_matched[d] = True
                    gt_pred[g] = dt_labels[d]
            fp_labels = dt_labels[~dt_matched]
            rows = torch.cat([gt_true, torch.full_like(fp_labels, c)])
            cols = torch.cat([gt_pred, fp_labels])
            matrix.index_put_((rows, cols), torch.ones_like(rows), accumulate=True)
        return matrix

    def _box_matches(self) -> tuple[Tensor, Tensor]:
        """Every box's score and whether it matched truth of its class at IoU 0.5, computed
        once per state of the data (the calibration and the F1 curve share it)."""
        from recog.metrics.box_calibration import box_matches

        if self._matches is None or self._matches[0] != self._version:
            pairs = box_matches(
                self._dt_boxes, self._dt_labels, self._dt_scores, self._gt_boxes, self._gt_labels
            )
            self._matches = (self._version, *pairs)
        return self._matches[1], self._matches[2]

    def box_calibration(self) -> dict[str, Any]:
        """Box scores against IoU-matched precision: reliability bins and `ece`."""
        from recog.metrics.box_calibration import box_reliability

        return box_reliability(*self._box_matches())

    def f1_confidence(self) -> dict[str, Any]:
        """F1, precision and recall against the score threshold, boxes matched to truth of
        their class at IoU 0.5, pooled over classes; with the best-F1 threshold.  With more
        than one class, `per_class` adds each class's own F1 curve and best threshold
        (`[{"label", "class_id", "f1", "best_threshold", "best_f1"}]`, classes with ground truth)."""
        from recog.metrics.box_calibration import f1_confidence, per_class_f1

        scores, hits = self._box_matches()
        out = f1_confidence(scores, hits, self.num_ground_truth)
        if self.num_classes > 1:
            labels = torch.cat(self._dt_labels) if self._dt_labels else torch.zeros(0)
            truth = torch.bincount(torch.cat(self._gt_labels), minlength=self.num_classes)
            out["per_class"] = per_class_f1(scores, hits, labels, truth, self.class_names)
        return out

    # ----------------------------------------------------------------- figures

    def figures(self, class_names: list[str]) -> list[Figure]:
        """PR curves per class at IoU .5 (needs ground truth) and the confusion
        matrix with a background class; none when no image was seen."""
        if self.num_images == 0:
            return []
        names = list(class_names) if len(class_names) == self.num_classes else self.class_names
        out = []
        evaluation = self._evaluate()
        if evaluation is not None:
            out.append(
                Figure(
                    "pr_curves",
                    "pr_curves",
                    {
                        # (R, K) at IoU .5, all areas, max_dets
                        "precision": evaluation.precision[0, :, :, 0, -1],
                        "recall": evaluation.rec_thrs,
                        "labels": names,
                    },
                )
            )
        if self.num_ground_truth and sum(int(s.numel()) for s in self._dt_scores):
            out.append(Figure("f1_confidence", "f1_confidence", self.f1_confidence()))
            out.append(
                Figure(
                    "reliability",
                    "box_reliability",
                    {
                        **self.box_calibration(),
                        "title": "box scores (precision of IoU >= 0.5 matches)",
                        "ylabel": "precision",
                    },
                )
            )
        out.append(
            Figure(
                "confusion",
                "detection_confusion",
                {
                    "matrix": self.confusion_matrix().tolist(),
                    "labels": [*names, "background"],
                    "titles": (
                        "detection confusion (counts)",
                        "detection confusion (row-normalized)",
                    ),
                    "xlabel": "predicted (background = missed)",
                    "ylabel": "true (background = false positive)",
                    "skip_corner": True,
                },
            )
        )
        return out


def _columns(
    boxes: list[Tensor], labels: list[Tensor]
) -> tuple[list[int], list[int], list[list[float]]]:
    """Per-image xyxy boxes -> (image ids from 1, category ids, [x, y, w, h]) as python lists."""
    if not boxes:
        return [], [], []
    counts = torch.tensor([b.shape[0] for b in boxes])
    image_ids = torch.repeat_interleave(torch.arange(1, len(boxes) + 1), counts)
    xyxy = torch.cat(boxes).double()  # w, h in float64 from the stored float32 corners
    xywh = torch.cat([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], dim=1)
    return image_ids.tolist(), (torch.cat(labels) + 1).tolist(), xywh.tolist()
