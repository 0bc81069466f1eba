"""Optimizers, per-step learning-rate schedules with warm-up, and weight EMA.

Schedules step once per optimizer step (not per epoch) so warm-up and
one-cycle behave the same for any dataset size.  EMA is torch's own
`AveragedModel` with an exponential-average function.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim import SGD, AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from recog.config import TrainConfig


def base_lr(cfg: TrainConfig) -> float:
    if cfg.lr is not None:
        return cfg.lr
    # Linear scaling rule (Goyal et al. 2017) from a reference batch of 64.
    scale = cfg.batch_size * cfg.accumulate / 64
    return (1e-3 if cfg.optimizer == "adamw" else 0.05) * max(scale, 0.25)


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> Optimizer:
    """No weight decay on biases and normalization parameters (1-d tensors)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": 0.05 if cfg.weight_decay is None else cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    lr = base_lr(cfg)
    if cfg.optimizer == "sgd":
        return SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    return AdamW(groups, lr=lr)


def build_scheduler(cfg: TrainConfig, optimizer: Optimizer, steps_per_epoch: int) -> LRScheduler:
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(cfg.warmup_epochs * steps_per_epoch)))
    if cfg.schedule == "onecycle":
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

    return LambdaLR(optimizer, factor)


def build_ema(model: nn.Module, decay: float) -> AveragedModel:
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def amp_dtype(device: torch.device, setting: str) -> torch.dtype | None:
    """The autocast dtype, or None for full precision."""
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return None  # no native bf16 (AVX512-BF16 / AMX): emulating it is slower than float32
    return torch.bfloat16
