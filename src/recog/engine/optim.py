"""Optimizers, per-step learning-rate schedules with warm-up, and weight EMA.

Schedules step once per optimizer step (not per epoch) so warm-up and
one-cycle behave the same for any dataset size.  Under a time budget
(`--time`) the schedule's progress is the fraction of the time used, read
from a clock, so the rate still anneals to its end when the run stops on
time.  EMA is torch's own `AveragedModel`, with the decay ramped up over the
first updates ((1 + n) / (10 + n), as TensorFlow's and timm's EMA) so the
average does not start anchored to the random initialization.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR
from torch.optim.swa_utils import AveragedModel

from recog.config import TrainConfig


def _is_head(name: str, head: tuple[str, ...]) -> bool:
    return any(name == h or name.startswith(h + ".") for h in head)


def build_optimizer(cfg: TrainConfig, model: nn.Module, *, head: tuple[str, ...] = ()) -> Optimizer:
    """No weight decay on biases and normalization parameters (1-d tensors).

    With `head` (parameter-name prefixes of a new head) and a fine-tuning setting
    (`head_epochs`, `backbone_lr`), the rest of the network is in groups of its own
    (`body: True`) whose rate `build_scheduler` holds at 0 while the head trains alone,
    then scales by `backbone_lr`."""
    split = bool(head) and (float(cfg.head_epochs or 0) > 0 or float(cfg.backbone_lr or 1) < 1)
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            body = split and not _is_head(name, head)
            buckets.setdefault((body, param.ndim <= 1), []).append(param)
    groups = [
        {"params": params, "weight_decay": 0.0 if flat else float(cfg.weight_decay), "body": body}
        for (body, flat), params in sorted(buckets.items())
    ]
    lr = float(cfg.lr)
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    return AdamW(groups, lr=lr)


def build_scheduler(
    cfg: TrainConfig,
    optimizer: Optimizer,
    steps_per_epoch: int,
    *,
    progress: Callable[[], float] | None = None,
) -> LRScheduler:
    """Warm-up, then cosine (or constant / one-cycle) over the run's steps.

    `progress`, when given, returns the fraction of the time budget used; the
    cosine follows it, or the step count where that is further along (one-cycle
    then behaves as cosine).
    """
    total = int(cfg.epochs) * steps_per_epoch
    total = max(1, min(total, int(cfg.steps or total)))  # `--steps` ends inside an epoch
    warmup = min(total - 1, int(round(float(cfg.warmup_epochs) * steps_per_epoch)))
    body_groups = [bool(g.get("body")) for g in optimizer.param_groups]
    if progress is not None:

        def by_time(step: int) -> float:
            warm = (step + 1) / (warmup + 1) if step < warmup else 1.0
            if cfg.schedule == "constant":
                return warm
            # whichever ends the run first: the clock, or the epochs (an upper bound under
            # --time; the rule's plan under the 15-minute cap, which a fast machine reaches)
            done = min(1.0, max(0.0, progress(), step / total))
            return min(warm, 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done)))

        return LambdaLR(optimizer, _per_group(by_time, body_groups, cfg, steps_per_epoch))
    if cfg.schedule == "onecycle" and not any(body_groups):
        return OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total,
            pct_start=max(warmup / total, 0.05),
        )

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, _per_group(factor, body_groups, cfg, steps_per_epoch))


def _per_group(
    factor: Callable[[int], float], body_groups: list[bool], cfg: TrainConfig, steps_per_epoch: int
) -> list[Callable[[int], float]]:
    """The head follows `factor`; the body (fine-tuning) is held at 0 for `head_epochs`,
    then ramps up over as many steps again (up to an epoch), scaled by `backbone_lr`: the
    new head's first, random gradients never reach the pretrained layers (Howard & Ruder
    2018, ULMFiT's gradual unfreezing; fastai's `fine_tune`)."""
    frozen = int(round(float(cfg.head_epochs or 0) * steps_per_epoch))
    ramp = max(1, min(frozen, steps_per_epoch))
    scale = float(cfg.backbone_lr if cfg.backbone_lr is not None else 1.0)

    def body(step: int) -> float:
        if step < frozen:
            return 0.0
        return factor(step) * scale * min(1.0, (step - frozen + 1) / ramp)

    return [body if is_body else factor for is_body in body_groups]


def build_ema(model: nn.Module, decay: float) -> AveragedModel:
    def ema_update(averaged: list, current: list, num_averaged: torch.Tensor | int) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # batch-norm's num_batches_tracked
                a.copy_(c)

    return AveragedModel(model, multi_avg_fn=ema_update, use_buffers=True)


def amp_dtype(device: torch.device, setting: str) -> torch.dtype | None:
    """The autocast dtype, or None for full precision."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None  # no native bf16 (AVX512-BF16 / AMX): emulating it is slower than float32
    return torch.bfloat16
