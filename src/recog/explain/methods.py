"""The explanation methods: each maps one image and one target to a saliency map in [0, 1].

Grad-CAM, Grad-CAM++, LayerCAM and EigenCAM come from pytorch-grad-cam;
integrated gradients and occlusion from Captum.  Both libraries explain a
classifier's output; `TargetModel` gives them every task's target as that
output (recog.explain.target).  Two methods are recog's own, because
neither library has them: `drise`, the RISE/D-RISE perturbation method
(Petsiuk et al. 2018, 2021: random masks weighted by the target's score on
the masked image, here centred on the mean score), which needs no gradient and so explains any model, and
`random`, a uniform random map that is the baseline every faithfulness
score is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recog.explain.target import TargetModel

#: every method `recog explain --method` accepts, in the order tables list them
METHODS = ("gradcam", "gradcam++", "layercam", "eigencam", "ig", "occlusion", "drise", "random")
CAM_METHODS = ("gradcam", "gradcam++", "layercam", "eigencam")


@dataclass
class MapInputs:
    """What a method needs for one image and one target."""

    #: (1, 3, H, W) float in [0, 1] at the model's input size
    image: torch.Tensor
    #: the target's score with gradient (a logit where the task has one)
    evidence: TargetModel
    #: (B, 3, H, W) in [0, 1] -> (B,) probability-like score, no gradient
    score: Callable[[torch.Tensor], torch.Tensor]
    #: the CAM layer and its reshape transform (ViT tokens), when a CAM method is asked
    layer: nn.Module | None = None
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None
    seed: int = 0
    #: masks drawn by drise
    drise_masks: int = 256


def normalized(saliency: np.ndarray | torch.Tensor) -> np.ndarray:
    """(H, W) float32 scaled to [0, 1]; a constant map becomes zeros."""
    m = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else saliency
    m = np.nan_to_num(np.asarray(m, dtype=np.float32))
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _cam(method: str, x: MapInputs) -> np.ndarray:
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM}.get(
        method, EigenCAM
    )
    with cls(model=x.evidence, target_layers=[x.layer], reshape_transform=x.reshape) as cam:
        maps = cam(input_tensor=x.image.clone(), targets=[ClassifierOutputTarget(0)])
    return normalized(maps[0])


def _integrated_gradients(x: MapInputs) -> np.ndarray:
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(lambda images: x.evidence(images)[:, 0])
    attr = ig.attribute(
        x.image.clone(), baselines=torch.zeros_like(x.image), n_steps=32, internal_batch_size=16
    )
    # the evidence each pixel adds (channels summed); what argues against the target is 0
    return normalized(attr[0].sum(0).clamp(min=0))


def _occlusion(x: MapInputs) -> np.ndarray:
    from captum.attr import Occlusion

    side = min(x.image.shape[-2:])
    window = max(2, side // 8)
    occ = Occlusion(lambda images: x.score(images).to(images.device))
    attr = occ.attribute(
        x.image.clone(),
        sliding_window_shapes=(3, window, window),
        strides=(3, max(1, window // 2), max(1, window // 2)),
        baselines=0.0,
        perturbations_per_eval=16,
    )
    return normalized(attr[0].sum(0).clamp(min=0))


def rise_masks(n: int, size: tuple[int, int], *, cells: int = 8, p: float = 0.5, seed: int = 0):
    """`n` smooth random masks (n, 1, H, W) in [0, 1] (RISE: a `cells` x `cells` binary grid,
    upsampled bilinearly and shifted by a random fraction of a cell)."""
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    grid = (torch.rand((n, 1, cells, cells), generator=gen) < p).float()
    ch, cw = -(-h // cells), -(-w // cells)
    up = F.interpolate(grid, size=((cells + 1) * ch, (cells + 1) * cw), mode="bilinear")
    dy = torch.randint(0, ch, (n,), generator=gen)
    dx = torch.randint(0, cw, (n,), generator=gen)
    return torch.stack([up[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)]), p


def _drise(x: MapInputs) -> np.ndarray:
    """Sum over masks of (score - mean score) x mask: the covariance of each pixel's mask
    value with the target's score.  RISE's plain score-weighted sum is mean score x the
    masks' coverage plus this; the coverage pattern is the same whatever the weights, and
    it kept maps of a re-initialized model at rank correlation 0.94 with the trained one's
    on hymenoptera photos (issue 12 note).  Centring drops it and keeps the ranking
    of what the score depends on."""
    masks, _ = rise_masks(x.drise_masks, tuple(x.image.shape[-2:]), seed=x.seed)
    masks = masks.to(x.image.device)
    weights = torch.cat(
        [x.score(x.image * masks[s : s + 32]).to(masks.device).reshape(-1)
         for s in range(0, len(masks), 32)]
    )  # fmt: skip
    if float(weights.max() - weights.min()) <= 1e-6:  # no mask moved the score: no evidence
        return np.zeros(tuple(x.image.shape[-2:]), dtype=np.float32)
    centred = (weights - weights.mean()).to(masks.dtype)
    return normalized(torch.einsum("n,nhw->hw", centred, masks[:, 0]) / len(masks))


def _random(x: MapInputs) -> np.ndarray:
    rng = np.random.default_rng(x.seed)
    return rng.random(tuple(x.image.shape[-2:]), dtype=np.float32)


def saliency(method: str, x: MapInputs) -> np.ndarray:
    """(H, W) float32 in [0, 1]: where `method` says the target's evidence is."""
    if method in CAM_METHODS:
        return _cam(method, x)
    return {
        "ig": _integrated_gradients,
        "occlusion": _occlusion,
        "drise": _drise,
        "random": _random,
    }[method](x)
