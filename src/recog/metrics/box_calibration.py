"""Detection box scores against IoU-matched truth: calibration (does a box scored 0.8 match an
object 80% of the time?) and the F1 / precision / recall against confidence curve.

Each predicted box is matched, COCO-style, to ground truth of its own class:
per image and class, boxes in descending score each take the unmatched
ground-truth box of highest IoU, if that IoU is at least 0.5.  A box's
"correct" is whether it was matched, so a bin's accuracy is the precision of
its boxes.  The detection ECE (D-ECE, Küppers et al. 2020, confidence only)
is the box-count-weighted mean |precision - mean score| over equal-width
score bins: torchmetrics' binary calibration error of (score, matched).

The F1-confidence curve uses the same matches: keeping the boxes scored at
least t, precision = matched kept / kept and recall = matched kept / ground
truth, pooled over classes (Ultralytics averages per-class curves instead; a
pooled curve has one threshold to pick for every class, which is what
`--conf` sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_calibration_error


def match_boxes(
    dt_boxes: Tensor,
    dt_labels: Tensor,
    dt_scores: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    *,
    iou_threshold: float = 0.5,
) -> Tensor:
    """(D,) bool: which predicted boxes (xyxy pixels) match a ground-truth box of their class."""
    from torchvision.ops import box_iou

    matched = torch.zeros(dt_boxes.shape[0], dtype=torch.bool)
    if not dt_boxes.shape[0] or not gt_boxes.shape[0]:
        return matched
    iou = box_iou(dt_boxes.float(), gt_boxes.float())  # (D, G)
    iou[dt_labels[:, None] != gt_labels[None, :]] = -1.0
    taken = torch.zeros(gt_boxes.shape[0], dtype=torch.bool)
    for d in dt_scores.argsort(descending=True, stable=True).tolist():
        row = iou[d].masked_fill(taken, -1.0)
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            taken[best] = True
            matched[d] = True
    return matched


def box_reliability(scores: Tensor, matched: Tensor, *, n_bins: int = 15) -> dict[str, Any]:
    """The reliability diagram's numbers for box scores (N,) and matches (N,) bool: `edges`,
    per bin `count`, mean `confidence` and `accuracy` (precision; None when empty), and `ece`."""
    scores = scores.double().clamp(0, 1)
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    index = (torch.bucketize(scores, edges, right=True) - 1).clamp(0, n_bins - 1)
    count, confidence, accuracy = [], [], []
    for i in range(n_bins):
        inside = index == i
        n = int(inside.sum())
        count.append(n)
        confidence.append(float(scores[inside].mean()) if n else None)
        accuracy.append(float(matched[inside].double().mean()) if n else None)
    ece = (
        float(binary_calibration_error(scores.float(), matched.long(), n_bins=n_bins).double())
        if scores.numel()
        else 0.0
    )
    return {
        "edges": edges.tolist(),
        "count": count,
        "confidence": confidence,
        "accuracy": accuracy,
        "ece": ece,
    }


def f1_confidence(
    scores: Tensor, matched: Tensor, num_truth: int, *, points: int = 101
) -> dict[str, Any]:
    """F1, precision and recall of the boxes scored >= t, on a grid of `points` thresholds
    t in [0, 1] (`thresholds`), and the exact best: `best_threshold` is the score at or above
    which keeping boxes gives the highest F1 (`best_f1`; the highest such score on ties),
    found over every distinct score, not only the grid.  scores (N,), matched (N,) bool;
    num_truth: ground-truth boxes (recall's denominator).  Precision of an empty set is 1."""
    scores = scores.double().reshape(-1)
    hits = matched.reshape(-1).double()
    grid = torch.linspace(0, 1, points, dtype=torch.float64)
    kept = scores[None, :] >= grid[:, None]  # (points, N)
    tp = (kept.double() * hits[None, :]).sum(1)
    n = kept.sum(1).double()
    precision = torch.where(n > 0, tp / n.clamp(min=1), torch.ones_like(tp))
    recall = tp / max(num_truth, 1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    best_threshold, best_f1 = 0.0, 0.0
    if scores.numel() and num_truth:
        order = scores.argsort(descending=True, stable=True)
        s, cum_tp = scores[order], hits[order].cumsum(0)
        # a threshold keeps every box of its score: evaluate at the last box of each score
        last = torch.cat([s[1:] != s[:-1], torch.tensor([True])])
        k = torch.arange(1, s.numel() + 1, dtype=torch.float64)[last]
        tp_at, s_at = cum_tp[last], s[last]
        f1_at = 2 * tp_at / (k + num_truth)  # 2PR/(P+R) = 2TP/(kept + truth)
        i = int(f1_at.argmax())  # first maximum: the highest score among ties
        best_threshold, best_f1 = float(s_at[i]), float(f1_at[i])
    return {
        "thresholds": grid.tolist(),
        "f1": f1.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "best_threshold": best_threshold,
        "best_f1": best_f1,
    }


def per_class_f1(
    scores: Tensor, matched: Tensor, labels: Tensor, truth: Tensor, class_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Each class's own F1 curve (`f1_confidence` on its boxes and its ground truth count
    `truth[k]`): `[{"label", "class_id", "f1", "best_threshold", "best_f1"}]`, classes
    without ground truth left out."""
    out = []
    for k, name in enumerate(class_names):
        if int(truth[k]) == 0:
            continue
        mine = labels == k
        curve = f1_confidence(scores[mine], matched[mine], int(truth[k]))
        out.append({"label": name, "class_id": k, "f1": curve["f1"],
                    "best_threshold": curve["best_threshold"], "best_f1": curve["best_f1"]})  # fmt: skip
    return out


def box_matches(
    dt_boxes: Sequence[Tensor],
    dt_labels: Sequence[Tensor],
    dt_scores: Sequence[Tensor],
    gt_boxes: Sequence[Tensor],
    gt_labels: Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """Every image's boxes pooled: (scores (N,), matched (N,) bool), matched at IoU 0.5."""
    matched = [
        match_boxes(db, dl, ds, gb, gl)
        for db, dl, ds, gb, gl in zip(
            dt_boxes, dt_labels, dt_scores, gt_boxes, gt_labels, strict=True
        )
    ]
    scores = torch.cat(list(dt_scores)) if dt_scores else torch.zeros(0)
    hits = torch.cat(matched) if matched else torch.zeros(0, dtype=torch.bool)
    return scores, hits
