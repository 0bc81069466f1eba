"""Classification metrics: `ClassificationAccumulator` owns top-1/top-5, F1,
precision, recall, calibration (ECE, class-wise ECE, the reliability diagram's
bins), NLL and the confusion matrix.

The accumulator keeps every probability row (on the CPU, float32) and reduces
them once in `compute`, using torchmetrics' functional API, so the numbers do
not depend on how the evaluation was batched or split across ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_calibration_error,
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from recog.metrics.base import Accumulator, Figure
from recog.types import Prediction, Target


class ClassificationAccumulator(Accumulator):
    """Stores (N, C) probabilities and (N,) labels; `compute` gives DESIGN.md's names.

    class_names: the C class names, in label order (keys of the `per_class*` maps).
    ece_bins: equal-width confidence bins for the expected calibration error.
    """

    def __init__(self, class_names: list[str], *, ece_bins: int = 15) -> None:
        if not class_names:
            raise ValueError("ClassificationAccumulator needs at least one class name")
        self.class_names = list(class_names)
        self.ece_bins = int(ece_bins)
        self._probs: list[Tensor] = []
        self._labels: list[Tensor] = []

    @property
    def num_samples(self) -> int:
        return sum(int(t.shape[0]) for t in self._labels)

    def update(self, predictions: Sequence[Prediction], targets: Sequence[Target]) -> None:
        """prediction.scores: (C,) probabilities; target.labels: 0-d int64 class index."""
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        if not predictions:
            return
        probs = torch.stack(
            [p.scores.detach().to("cpu", torch.float32).reshape(-1) for p in predictions]
        )
        labels = torch.stack(
            [t.labels.detach().to("cpu", torch.int64).reshape(()) for t in targets]
        )
        self.update_tensors(probs, labels)

    def update_tensors(self, probs: Tensor, labels: Tensor) -> None:
        """Fast path: probs (B, C) float probabilities, labels (B,) int64."""
        if probs.ndim != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(f"probs must be (B, {self.num_classes}), got {tuple(probs.shape)}")
        labels = labels.reshape(-1)
        if labels.shape[0] != probs.shape[0]:
            raise ValueError(f"{probs.shape[0]} probability rows for {labels.shape[0]} labels")
        if probs.shape[0] == 0:
            return
        self._probs.append(probs.detach().to("cpu", torch.float32))
        self._labels.append(labels.detach().to("cpu", torch.int64))

    def merge(self, other: Accumulator) -> None:
        """Append another accumulator's rows (another rank's shard)."""
        self._check_merge(other)
        self._probs.extend(other._probs)
        self._labels.extend(other._labels)

    def _tensors(self) -> tuple[Tensor, Tensor]:
        return torch.cat(self._probs), torch.cat(self._labels)

    def compute(self) -> dict[str, Any]:
        """Fractions in [0, 1] as python floats; maps keyed by class name; {"num_samples": 0} when empty."""
        n = self.num_samples
        if n == 0:
            return {"num_samples": 0}
        probs, labels = self._tensors()
        c = self.num_classes
        # The inputs are already probabilities; skipping validation also stops torchmetrics
        # from soft-maxing rows that stray just outside [0, 1] through rounding.
        kw: dict[str, Any] = {"num_classes": c, "validate_args": False}

        def scalar(t: Tensor) -> float:
            return float(t.double().item())

        out: dict[str, Any] = {
            "top1": scalar(multiclass_accuracy(probs, labels, average="micro", top_k=1, **kw))
        }
        if c >= 5:
            out["top5"] = scalar(multiclass_accuracy(probs, labels, average="micro", top_k=5, **kw))
        f1_each = multiclass_f1_score(probs, labels, average="none", zero_division=0, **kw)
        precision_each = multiclass_precision(probs, labels, average="none", zero_division=0, **kw)
        recall_each = multiclass_recall(probs, labels, average="none", zero_division=0, **kw)
        out["macro_f1"] = scalar(
            multiclass_f1_score(probs, labels, average="macro", zero_division=0, **kw)
        )
        out["weighted_f1"] = scalar(
            multiclass_f1_score(probs, labels, average="weighted", zero_division=0, **kw)
        )
        out["macro_precision"] = scalar(
            multiclass_precision(probs, labels, average="macro", zero_division=0, **kw)
        )
        out["macro_recall"] = scalar(
            multiclass_recall(probs, labels, average="macro", zero_division=0, **kw)
        )
        out["ece"] = self._ece(probs, labels)
        out["nll"] = _nll(probs, labels)
        names = self.class_names
        out["per_class"] = dict(zip(names, f1_each.double().tolist(), strict=True))
        out["per_class_precision"] = dict(zip(names, precision_each.double().tolist(), strict=True))
        out["per_class_recall"] = dict(zip(names, recall_each.double().tolist(), strict=True))
        support = torch.bincount(labels, minlength=c)
        out["per_class_support"] = dict(zip(names, (int(s) for s in support), strict=True))
        out["per_class_ece"] = dict(zip(names, self._class_wise_ece(probs, labels), strict=True))
        matrix = multiclass_confusion_matrix(probs, labels, **kw)
        out["confusion_matrix"] = [[int(v) for v in row] for row in matrix.tolist()]
        out["num_samples"] = n
        return out

    def _class_wise_ece(self, probs: Tensor, labels: Tensor) -> list[float]:
        """Per class c: the calibration error of p_c against [label == c] (Kull et al. 2019's
        class-wise ECE), torchmetrics' binary ECE with the same bins."""
        return [
            float(
                binary_calibration_error(
                    probs[:, c].clamp(0, 1),
                    (labels == c).long(),
                    n_bins=self.ece_bins,
                    validate_args=False,
                ).double()
            )
            for c in range(self.num_classes)
        ]

    def reliability(self) -> dict[str, Any]:
        """The reliability diagram's numbers: per equal-width bin of the top-1 confidence,
        `count`, mean `confidence` and `accuracy` (None for an empty bin); `edges` (bins + 1)."""
        probs, labels = self._tensors()
        conf, pred = probs.max(dim=1)
        correct = (pred == labels).double()
        edges = torch.linspace(0, 1, self.ece_bins + 1, dtype=torch.float64)
        # bin i holds [edges[i], edges[i + 1]) as torchmetrics bins (so the count-weighted gaps
        # add up to `ece`); a confidence of exactly 1 joins the top bin
        index = (torch.bucketize(conf.double(), edges, right=True) - 1).clamp(0, self.ece_bins - 1)
        count, confidence, accuracy = [], [], []
        for i in range(self.ece_bins):
            inside = index == i
            n = int(inside.sum())
            count.append(n)
            confidence.append(float(conf[inside].double().mean()) if n else None)
            accuracy.append(float(correct[inside].mean()) if n else None)
        return {
            "edges": edges.tolist(),
            "count": count,
            "confidence": confidence,
            "accuracy": accuracy,
        }

    def figures(self, class_names: list[str]) -> list[Figure]:
        """The confusion matrix (counts and row-normalized) and the reliability diagram;
        none when empty."""
        if self.num_samples == 0:
            return []
        probs, labels = self._tensors()
        matrix = multiclass_confusion_matrix(
            probs, labels, num_classes=self.num_classes, validate_args=False
        )
        names = list(class_names) if len(class_names) == self.num_classes else self.class_names
        return [
            Figure(
                "confusion",
                "confusion_matrix",
                {
                    "matrix": matrix.tolist(),
                    "labels": names,
                    "titles": ("counts", "row-normalized (recall)"),
                },
            ),
            Figure(
                "reliability",
                "reliability",
                {
                    **self.reliability(),
                    "ece": self._ece(probs, labels),
                    "title": "reliability (top-1 confidence against accuracy)",
                },
            ),
        ]

    def _ece(self, probs: Tensor, labels: Tensor) -> float:
        return float(
            multiclass_calibration_error(
                probs,
                labels,
                num_classes=self.num_classes,
                n_bins=self.ece_bins,
                norm="l1",
                validate_args=False,
            ).double()
        )


def _nll(probs: Tensor, labels: Tensor) -> float:
    """Mean -log p(true class), rows renormalized, clipped at float32 eps (as scikit-learn's log_loss)."""
    p = probs.double()
    p = p / p.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    eps = torch.finfo(probs.dtype).eps
    picked = p.gather(1, labels.view(-1, 1)).squeeze(1).clamp(eps, 1 - eps)
    return float(-picked.log().mean().item())
