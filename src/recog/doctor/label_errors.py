"""Likely label errors, as findings for `recog data doctor`: each task's finder.

The doctor hands each finder two ways to ask a model (`recog.doctor.facet`'s
`label_findings`), and each task uses the one its evidence needs:
classification calls `cross_validated` (out-of-fold class probabilities for
every image: a model never scores an image it trained on); detection and
segmentation call `predict` (the run's predictions, every candidate box
kept) and compare them with the annotations.  Without a run those two say
what is missing instead.  The scoring itself is `recog.metrics.label_issues`
(cleanlab's finders, and IoU outliers for masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from recog.data.formats.masks import MaskDecoder, read_mask_raw
from recog.data.inventory import Finding, Inventory
from recog.errors import RecogError
from recog.metrics.label_issues import classification_issues, detection_issues, mask_iou_outliers
from recog.types import IGNORE_INDEX, Prediction

CrossValidated = Callable[[], np.ndarray]
Predict = Callable[[Sequence[Path]], list[Prediction]]
#: every finder's signature: the two ways to ask a model; each task asks the one its
#: evidence needs (`predict` is None without a run)
LabelFinder = Callable[..., tuple[list[Finding], str]]

NEEDS_RUN = "needs --run RUN (a model trained on this data) to compare the annotations with"


def _compares_predictions(
    what: str,
) -> Callable[[Callable[..., tuple[list[Finding], str]]], LabelFinder]:
    """A finder that compares the run's predictions of every image with the annotations:
    given those predictions, or saying that `what` needs a run where there is none."""

    def wrap(compare: Callable[..., tuple[list[Finding], str]]) -> LabelFinder:
        def finder(
            inv: Inventory, *, cross_validated: CrossValidated, predict: Predict | None
        ) -> tuple[list[Finding], str]:
            if predict is None:
                return [], f"{what}: {NEEDS_RUN}"
            return compare(inv, predict([e.path for e in inv.entries]))

        finder.__doc__, finder.__name__ = compare.__doc__, compare.__name__
        return finder

    return wrap


def classify_label_findings(
    inv: Inventory, *, cross_validated: CrossValidated, predict: Predict | None
) -> tuple[list[Finding], str]:
    probs = cross_validated()
    labels = [int(e.label) for e in inv.entries]  # type: ignore[arg-type]
    out = []
    for i, quality in classification_issues(labels, probs):
        e = inv.entries[i]
        given, suggested = inv.class_names[labels[i]], inv.class_names[int(probs[i].argmax())]
        out.append(
            Finding(
                "label-error",
                [str(e.path)],
                f"{e.path}: labelled {given!r}, the model says {suggested!r} "
                f"(p={float(probs[i].max()):.2f})",
                e.split,
                1.0 - quality,
                {"given": given, "suggested": suggested, "quality": round(quality, 4)},
            )
        )
    return out, f"cleanlab find_label_issues on out-of-fold probabilities of {len(labels)} images"


def _box(values: Sequence[float]) -> list[float]:
    return [round(float(v), 1) for v in values]


@_compares_predictions("box errors")
def detect_label_findings(inv: Inventory, preds: list[Prediction]) -> tuple[list[Finding], str]:
    given_b = [e.boxes.numpy() for e in inv.entries]  # type: ignore[union-attr]
    given_l = [e.box_labels.numpy() for e in inv.entries]  # type: ignore[union-attr]
    pred_b = [p.boxes.cpu().numpy() for p in preds]  # type: ignore[union-attr]
    pred_s = [p.scores.cpu().numpy() for p in preds]  # type: ignore[union-attr]
    pred_l = [p.labels.cpu().numpy() for p in preds]  # type: ignore[union-attr]
    found = detection_issues(given_b, given_l, pred_b, pred_s, pred_l, len(inv.class_names))
    names = inv.class_names
    out = []
    for i, k, score in found["overlooked"]:
        e, box = inv.entries[i], _box(pred_b[i][k])
        what = names[int(pred_l[i][k])]
        out.append(
            Finding(
                "box-overlooked",
                [str(e.path)],
                f"{e.path}: a {what!r} at {box} has no box (model score {pred_s[i][k]:.2f})",
                e.split,
                1.0 - score,
                {"box": box, "class": what, "model_score": round(float(pred_s[i][k]), 4)},
            )
        )
    for kind, text in (("swapped", "box-swapped"), ("badloc", "box-badly-located")):
        for i, k, score in found[kind]:
            e, box = inv.entries[i], _box(given_b[i][k])
            given = names[int(given_l[i][k])]
            out.append(
                Finding(
                    text,
                    [str(e.path)],
                    f"{e.path}: the {given!r} box {box} "
                    + (
                        "looks like another class"
                        if kind == "swapped"
                        else "fits its object poorly"
                    ),
                    e.split,
                    1.0 - score,
                    {"box": box, "class": given, "cleanlab_score": round(score, 4)},
                )
            )
    return (
        out,
        f"cleanlab object-detection box scores on the run's predictions of {len(preds)} images",
    )


def _image_iou(pred: torch.Tensor, truth: torch.Tensor, num_classes: int) -> float:
    """Mean IoU over the classes present in either map (ignore pixels left out)."""
    keep = truth != IGNORE_INDEX
    p, t = pred[keep], truth[keep]
    ious = []
    for c in range(num_classes):
        union = int(((p == c) | (t == c)).sum())
        if union:
            ious.append(int(((p == c) & (t == c)).sum()) / union)
    return float(np.mean(ious)) if ious else 1.0


@_compares_predictions("mask errors")
def segment_label_findings(inv: Inventory, preds: list[Prediction]) -> tuple[list[Finding], str]:
    decode = MaskDecoder(inv.mask_classes, inv.binary_masks)
    ious, kept = [], []
    for e, p in zip(inv.entries, preds, strict=True):
        try:
            truth = decode(read_mask_raw(e.mask), e.mask)  # type: ignore[arg-type]
        except RecogError:
            continue  # a mask the annotation checks already report
        if p.mask is None or tuple(p.mask.shape) != tuple(truth.shape):
            continue
        ious.append(_image_iou(p.mask.cpu(), truth, inv.mask_classes))
        kept.append(e)
    out = []
    median = float(np.median(ious)) if ious else 0.0
    for i, iou in mask_iou_outliers(ious):
        e = kept[i]
        out.append(
            Finding(
                "mask-iou-outlier",
                [str(e.mask), str(e.path)],
                f"{e.mask}: the run's prediction agrees with this mask at IoU {iou:.2f} "
                f"(median {median:.2f})",
                e.split,
                1.0 - iou,
                {"iou": round(iou, 4), "median_iou": round(median, 4)},
            )
        )
    return out, f"per-image IoU of the run's predictions on {len(ious)} masks; Tukey outliers"
