"""Fitting and measuring on a run's data: the steps `recog calibrate` and `recog ood` take.

The caller (the API) says which data: the held-out labelled images (the
run's validation split by default), the training images as evaluation sees
them (for the feature scores' statistics), and, for a report, in- and
out-of-distribution images.  Nothing here writes a file; the API saves what
it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recog.confidence.calibration import Calibration
from recog.confidence.features import Outputs, collect_dataset, collect_files
from recog.confidence.ood import (
    FEATURE_SCORES,
    IMAGENET_SCORES,
    RUN_FEATURE_SCORES,
    SCORES,
    FeatureStats,
    OODRule,
    auroc_fpr95,
    score,
)
from recog.errors import RecogError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from recog.confidence.imagenet import ImageNetFeatures
    from recog.models.registry import ModelSpec
    from recog.tasks.base import Task


def check_tpr(tpr: float) -> float:
    """`tpr` if it is a fraction strictly between 0 and 1, else one RecogError line."""
    if not isinstance(tpr, int | float) or isinstance(tpr, bool) or not 0.0 < float(tpr) < 1.0:
        raise RecogError(f"--tpr {tpr}: must be a fraction between 0 and 1 (exclusive), e.g. 0.95")
    return float(tpr)


def check_score(name: str) -> str:
    if name not in SCORES:
        raise RecogError(f"--ood-score {name}: one of {', '.join(SCORES)}")
    return name


@dataclass(frozen=True)
class ModelAt:
    """The model the fitting measures with: its task, network, spec and device, the images
    one forward pass takes, and the untouched ImageNet network beside it (None: the
    `imagenet_*` scores are not measured)."""

    task: Task
    model: nn.Module
    spec: ModelSpec
    device: torch.device
    batch_size: int = 64
    imagenet: ImageNetFeatures | None = None

    def outputs(self, dataset: Dataset) -> Outputs:
        """Logits, features and labels over the labelled `dataset`."""
        return collect_dataset(
            self.task, self.model, self.spec, dataset, self.device,
            batch_size=self.batch_size, imagenet=self.imagenet,
        )  # fmt: skip

    def file_outputs(self, files: Sequence[Path]) -> Outputs:
        """Logits and features of image files, prepared as `recog predict` prepares them."""
        return collect_files(
            self.task, self.model, self.spec, files, self.device,
            batch_size=self.batch_size, imagenet=self.imagenet,
        )  # fmt: skip

    def scores(self) -> tuple[str, ...]:
        """The scores this model can be measured with."""
        return tuple(s for s in SCORES if self.imagenet is not None or s not in IMAGENET_SCORES)


def calibrate(at: ModelAt, held_out: Dataset, *, data: str) -> Calibration:
    """Temperature scaling fitted on the labelled `held_out` images."""
    out = at.outputs(held_out)
    assert out.labels is not None
    return Calibration.fit(out.logits, out.labels, data=data)


def reference_stats(
    at: ModelAt, reference: Dataset, *, scores: tuple[str, ...] | None = None
) -> dict[str, FeatureStats]:
    """Each feature score's statistics from the training images (no augmentation): one
    `FeatureStats` for the scores on the run's features, one for those on ImageNet's."""
    wanted = [s for s in (scores or at.scores()) if s in FEATURE_SCORES]
    out = at.outputs(reference)
    assert out.labels is not None
    stats: dict[str, FeatureStats] = {}
    for source in (RUN_FEATURE_SCORES, IMAGENET_SCORES):  # one fit for each kind of feature
        names = tuple(s for s in wanted if s in source)
        features = out.features_for(names[0]) if names else None
        if features is not None:
            stats |= dict.fromkeys(names, FeatureStats.fit(features, out.labels, scores=names))
    return stats


def fit_rule(
    at: ModelAt,
    held_out: Dataset,
    reference: Callable[[], Dataset],
    *,
    score_name: str,
    tpr: float,
    data: str,
) -> OODRule:
    """The reject rule: `score_name`'s threshold keeping `tpr` of the `held_out` images."""
    check_score(score_name)
    check_tpr(tpr)
    if score_name in IMAGENET_SCORES and at.imagenet is None:
        raise RecogError(f"--ood-score {score_name}: no ImageNet network to read features from")
    val = at.outputs(held_out)
    stats = None
    if score_name in FEATURE_SCORES:
        stats = reference_stats(at, reference(), scores=(score_name,))[score_name]
    return OODRule.fit(
        score_name, val.logits, val.features_for(score_name), stats, tpr=tpr, data=data,
        features_from=at.imagenet.name if at.imagenet is not None else "",
    )  # fmt: skip


def ood_table(
    inside: Outputs, outside: Outputs, stats: dict[str, FeatureStats]
) -> dict[str, dict[str, Any]]:
    """{score: {"auroc", "fpr95"}} for every score the outputs allow (the `imagenet_*` ones
    where ImageNet features were collected), in-distribution images as positives."""
    table: dict[str, dict[str, Any]] = {}
    for name in SCORES:
        a_features, b_features = inside.features_for(name), outside.features_for(name)
        if a_features is None or b_features is None:
            continue
        a = score(name, inside.logits, a_features, stats.get(name))
        b = score(name, outside.logits, b_features, stats.get(name))
        table[name] = auroc_fpr95(a, b)
    return table
