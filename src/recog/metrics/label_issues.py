"""Likely label errors from a model's answers: cleanlab's finders, and IoU outliers for masks.

Classification: cleanlab's `find_label_issues` on out-of-fold class
probabilities (the caller cross-validates), ranked by self-confidence; the
suggested label is the most probable class.  Detection: cleanlab's
object-detection scores on the run's predictions (every candidate box, with
its score): overlooked boxes (a confident prediction no annotation covers),
swapped boxes (an annotation whose class the model calls another) and badly
located boxes (an annotation the model's boxes of its class overlap poorly),
each under the threshold cleanlab's own `find_label_issues` applies (0.8 x the
class's average precision; cleanlab computes it in a private helper, so the
pin on cleanlab < 3 matters) or half the median score of its kind, with
"confident" and "usable" box scores read from the run's own score scale
(`score_scale`: measured on raccoon, docs/doctor.md).  Segmentation has no
cleanlab finder: an image whose IoU with the run's prediction lies below the
lower Tukey fence (Q1 - 1.5 IQR) of all images, and below 0.5, is a likely
mask error.  cleanlab is imported when asked (it pulls pandas).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: cleanlab's own probability thresholds (its constants), the ceilings of `score_scale`
HIGH_PROBABILITY = 0.95
LOW_PROBABILITY = 0.5
#: a box scores as an issue below this fraction of the median score of its kind too
#: (cleanlab's 0.8 x class AP alone is near 0 for a weak detector: AP 0.05 on raccoon)
RELATIVE_CUT = 0.5
#: an IoU outlier must also be below this to be reported (a tight set has a tight fence)
MASK_IOU_CEILING = 0.5


def classification_issues(labels: Sequence[int], probs: np.ndarray) -> list[tuple[int, float]]:
    """(index, label quality) of the likely label errors, most likely first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    probs = probs / probs.sum(axis=1, keepdims=True)
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(labels, probs)
    return [(int(i), float(quality[i])) for i in ranked]


def _cleanlab_labels(boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> list[dict]:
    return [
        {"bboxes": np.asarray(b, dtype=np.float32).reshape(-1, 4), "labels": np.asarray(c, int)}
        for b, c in zip(boxes, labels, strict=True)
    ]


def _cleanlab_predictions(
    boxes: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    num_classes: int,
) -> list[np.ndarray]:
    """Per image, per class, an (M, 5) array of [x1, y1, x2, y2, score] (cleanlab's format)."""
    out = []
    for b, s, c in zip(boxes, scores, labels, strict=True):
        b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
        s = np.asarray(s, dtype=np.float32).reshape(-1, 1)
        c = np.asarray(c, dtype=np.int64).reshape(-1)
        rows = np.concatenate([b, s], axis=1)
        per_class = np.empty(num_classes, dtype=object)
        for k in range(num_classes):
            per_class[k] = rows[c == k].reshape(-1, 5)
        out.append(per_class)
    return out


def detection_issues(
    given_boxes: Sequence[np.ndarray],
    given_labels: Sequence[np.ndarray],
    pred_boxes: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
    pred_labels: Sequence[np.ndarray],
    num_classes: int,
) -> dict[str, list[tuple[int, int, float]]]:
    """{"overlooked": [(image, predicted box index, score)], "swapped": [(image, given box
    index, score)], "badloc": [...]}: cleanlab's box scores under its threshold, lowest first."""
    import warnings

    from cleanlab.internal.constants import (
        BADLOC_THRESHOLD_FACTOR,
        OVERLOOKED_THRESHOLD_FACTOR,
        SWAP_THRESHOLD_FACTOR,
    )
    from cleanlab.object_detection.filter import _get_per_class_ap
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
    )

    labels = _cleanlab_labels(given_boxes, given_labels)
    preds = _cleanlab_predictions(pred_boxes, pred_scores, pred_labels, num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its numpy empty-slice warnings on images with no box
        # cleanlab's own rule (its find_label_issues): a box is an issue when its score is at
        # most 0.8 x the average precision of its class, which these helpers compute
        per_class_ap = _get_per_class_ap(labels, preds)
        high, low = score_scale(pred_scores)
        scored = {
            "overlooked": (compute_overlooked_box_scores(labels=labels, predictions=preds,
                                                         high_probability_threshold=high),
                           pred_labels, OVERLOOKED_THRESHOLD_FACTOR),
            "swapped": (compute_swap_box_scores(labels=labels, predictions=preds,
                                                high_probability_threshold=high),
                        given_labels, SWAP_THRESHOLD_FACTOR),
            "badloc": (compute_badloc_box_scores(labels=labels, predictions=preds,
                                                 low_probability_threshold=low),
                       given_labels, BADLOC_THRESHOLD_FACTOR),
        }  # fmt: skip
    out: dict[str, list[tuple[int, int, float]]] = {}
    for kind, (per_image, classes, factor) in scored.items():
        flat = [np.asarray(v, dtype=np.float64).reshape(-1) for v in per_image]
        finite = np.concatenate([v[np.isfinite(v)] for v in flat]) if flat else np.zeros(0)
        typical = RELATIVE_CUT * float(np.median(finite)) if finite.size else 0.0
        found = []
        for i, values in enumerate(flat):
            owners = np.asarray(classes[i], dtype=np.int64).reshape(-1)
            for k, v in enumerate(values):
                if not np.isfinite(v) or k >= len(owners):
                    continue
                cut = max(per_class_ap.get(int(owners[k]), 1.0) * factor, typical)
                if v <= cut:
                    found.append((i, k, float(v)))
        out[kind] = sorted(found, key=lambda t: t[2])
    return out


def score_scale(pred_scores: Sequence[np.ndarray]) -> tuple[float, float]:
    """(high, low): what counts as a confident and as a usable box for this model.

    cleanlab's defaults (0.95 and 0.5) suit calibrated probabilities; a detector
    trained on a few hundred images scores its best box far lower (raccoon yolo_n,
    12 minutes: median best box 0.25, none above 0.6), and with the defaults no
    box of it counts, so nothing is ever found.  So: the median of each image's
    best score (a box as sure as this model usually is), and the 10th percentile,
    each capped at cleanlab's default."""
    best = np.asarray([float(np.max(s)) for s in pred_scores if np.size(s)], dtype=np.float64)
    if best.size == 0:
        return HIGH_PROBABILITY, LOW_PROBABILITY
    return (
        min(HIGH_PROBABILITY, float(np.median(best))),
        min(LOW_PROBABILITY, float(np.percentile(best, 10))),
    )


def mask_iou_outliers(ious: Sequence[float]) -> list[tuple[int, float]]:
    """(index, IoU) of images whose IoU is below the lower Tukey fence and the ceiling."""
    values = np.asarray(ious, dtype=np.float64)
    if values.size < 4:
        return []
    q1, q3 = np.percentile(values, [25, 75])
    fence = min(q1 - 1.5 * (q3 - q1), MASK_IOU_CEILING)
    low = [(int(i), float(values[i])) for i in np.nonzero(values < fence)[0]]
    return sorted(low, key=lambda t: t[1])
