"""How faithful a saliency map is to the model: deletion and insertion AUC, and the randomization check.

Deletion (Petsiuk et al. 2018): the map's pixels are set to black in its
order, most salient first, in `steps` equal parts; the target's score is
traced and the area under that curve (x in [0, 1]) taken: a faithful map
makes the score fall at once, so lower is better.  Insertion: from a
blurred copy of the image, the original pixels are put back in the map's
order; a faithful map makes the score rise at once, so higher is better.
Both are compared with the same curves for random maps.

The model-randomization check (Adebayo et al. 2018): the model's
parameterized layers are re-initialized cumulatively from the output back
in `levels` parts, and the map is made again each time; the mean absolute
Spearman rank correlation between the maps before and after says how much
the map depends on the learned weights (a map that ignores the model, say
an edge detector, stays at 1; lower is better).

These are recog's own because the libraries do not trace them for any
task's target: Captum and pytorch-grad-cam score classifier outputs at one
threshold each; pytorch-grad-cam's `RemoveMostRelevantFirst` measures
single points of the deletion curve, and a test checks that ours agree.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torchvision.transforms.v2 import functional as TF


def perturbed(image: torch.Tensor, saliency: np.ndarray, *, steps: int, mode: str) -> torch.Tensor:
    """(steps + 1, 3, H, W): `image` (1, 3, H, W) with 0, 1/steps, ..., all of its pixels
    deleted (mode "deletion", to black) or inserted into a blur ("insertion"), in the
    map's order."""
    _, _, h, w = image.shape
    order = torch.from_numpy(np.argsort(-saliency.reshape(-1), kind="stable").copy())
    counts = [round(k * h * w / steps) for k in range(steps + 1)]
    rank = torch.empty(h * w, dtype=torch.long)
    rank[order] = torch.arange(h * w)
    rank = rank.view(1, 1, h, w).to(image.device)
    chosen = torch.stack([(rank < c) for c in counts]).view(steps + 1, 1, h, w)
    if mode == "deletion":
        start, end = image, torch.zeros_like(image)
    elif mode == "insertion":
        sigma = max(1.0, min(h, w) / 8)  # strong enough that a 32 px digit is lost
        kernel = int(2 * round(3 * sigma) + 1)
        start, end = TF.gaussian_blur(image, [kernel, kernel], [sigma, sigma]), image
    else:  # pragma: no cover - the callers pass one of the two
        raise ValueError(mode)
    return torch.where(chosen, end, start)


def curve(
    score: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency: np.ndarray,
    *,
    steps: int,
    mode: str,
    batch: int = 32,
) -> np.ndarray:
    """The target's score at each of the `steps + 1` points of the deletion/insertion curve."""
    images = perturbed(image, saliency, steps=steps, mode=mode)
    return np.concatenate(
        [score(images[i : i + batch]).numpy() for i in range(0, len(images), batch)]
    ).astype(np.float64)


def auc(values: np.ndarray) -> float:
    """Area under a curve sampled at equal steps of x in [0, 1] (trapezoid rule)."""
    return float(np.trapezoid(values, dx=1.0 / (len(values) - 1)))


def deletion_insertion(
    score: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    saliency: np.ndarray,
    *,
    steps: int,
    batch: int = 64,
) -> dict[str, float]:
    """Deletion and insertion AUC of one map (both curves' images in one batch)."""
    images = torch.cat(
        [perturbed(image, saliency, steps=steps, mode=m) for m in ("deletion", "insertion")]
    )
    values = np.concatenate(
        [score(images[i : i + batch]).numpy() for i in range(0, len(images), batch)]
    ).astype(np.float64)
    return {
        "deletion_auc": auc(values[: steps + 1]),
        "insertion_auc": auc(values[steps + 1 :]),
    }


def randomization_levels(model: nn.Module, levels: int) -> list[list[str]]:
    """Names of the parameterized leaf modules, output end first, in `levels` cumulative
    groups (the first: the top fifth; the last: every layer)."""
    leaves = [
        name
        for name, m in model.named_modules()
        if not list(m.children()) and any(True for _ in m.parameters(recurse=False))
    ]
    leaves.reverse()
    levels = max(1, min(levels, len(leaves)))
    return [leaves[: round(len(leaves) * (k + 1) / levels)] for k in range(levels)]


def reinitialized(model: nn.Module, names: list[str], *, seed: int = 0) -> nn.Module:
    """A copy of `model` with the named modules' parameters re-initialized."""
    torch.manual_seed(seed)
    out = copy.deepcopy(model)
    modules = dict(out.named_modules())
    for name in names:
        m = modules[name]
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
        else:
            for p in m.parameters(recurse=False):
                torch.nn.init.normal_(p, std=0.02)
    return out.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """|Spearman rho| of two maps (1.0 for two constant maps: nothing changed)."""
    a, b = a.reshape(-1), b.reshape(-1)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(abs(spearmanr(a, b).statistic))
