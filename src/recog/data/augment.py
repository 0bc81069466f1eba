"""Classification transforms (torchvision.transforms.v2 on uint8 tensors).

Normalization is not done here: the task normalizes on the device, so the
loader ships compact uint8 images.  All randomness comes from torch's global
RNG, which the engine seeds per epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

# augment level -> (minimum crop scale, colour jitter strength)
_LEVELS = {"light": (0.6, 0.0), "standard": (0.25, 0.3), "strong": (0.08, 0.4)}


def eval_transform(*, img_size: int, crop_pct: float = 0.875) -> v2.Transform:
    """Resize the shorter side to img_size / crop_pct, then centre-crop img_size."""
    return v2.Compose(
        [v2.Resize(round(img_size / crop_pct), antialias=True), v2.CenterCrop(img_size)]
    )


def train_transform(
    *,
    img_size: int,
    augment: str = "standard",
    auto_augment: str = "none",
    hflip: float = 0.5,
    min_scale: float | None = None,
) -> v2.Transform:
    if augment == "none":
        steps: list[v2.Transform] = [v2.Resize(img_size, antialias=True), v2.CenterCrop(img_size)]
    else:
        scale, jitter = _LEVELS[augment]
        steps = [v2.RandomResizedCrop(img_size, scale=(min_scale or scale, 1.0), antialias=True)]
        if hflip > 0:
            steps.append(v2.RandomHorizontalFlip(hflip))
        if jitter:
            steps.append(
                v2.ColorJitter(jitter, jitter, jitter, 0.1 if augment == "strong" else 0.0)
            )
    if auto_augment == "randaugment":
        steps.append(v2.RandAugment())
    elif auto_augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)


def batch_mix(
    *, mixup: float, cutmix: float, num_classes: int
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """MixUp and/or CutMix over a batch: (images, labels (B,)) -> (images, soft labels (B, C))."""
    choices: list[v2.Transform] = []
    if mixup > 0:
        choices.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        choices.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)


def balanced_sampler(
    labels: list[int], *, num_samples: int | None = None, generator: torch.Generator | None = None
) -> torch.utils.data.WeightedRandomSampler:
    """Draws every class equally often (weights 1 / class frequency), with replacement."""
    counts = torch.bincount(torch.tensor(labels))
    weights = 1.0 / counts[torch.tensor(labels)].double()
    return torch.utils.data.WeightedRandomSampler(
        weights, num_samples or len(labels), replacement=True, generator=generator
    )
