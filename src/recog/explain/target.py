"""What an explanation differentiates: one target's score as a model of the image, and the layer a CAM reads.

`TargetModel` turns (task, model, target) into an `nn.Module` mapping float
images in [0, 1] to a (B, 1) score, so pytorch-grad-cam and Captum, which
explain classifiers, explain a box of a detector or a region of a
segmenter the same way (the task's explain facet says what the score is:
`recog.explain.facet`).  Normalization happens inside, so maps and
perturbations live in pixel space.

`cam_layer` picks the layer a class-activation map reads by a rule that
needs no per-model table: the last layer, in execution order and outside
the model's head, whose activation is spatial (B, C, H, W, or ViT tokens
B, T, C with a square grid) and whose gradient reaches more than one
position.  Head modules are skipped by name
(`ModelSpec.head`, and parts named head/heads/..._head).  The gradient test is what skips a ViT's last block, whose patch
tokens do not reach a class-token head (pytorch-grad-cam's documentation
uses the last block's first norm for the same reason), and a detector's
proposal head, whose proposals torchvision detaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from recog.errors import RecogError
from recog.explain.facet import EXPLAIN
from recog.tasks.base import Task
from recog.types import ExplainTarget


class TargetModel(nn.Module):
    """float images (B, 3, H, W) in [0, 1] -> (B, 1) the task's score for one target."""

    def __init__(
        self, task: Task, model: nn.Module, target: ExplainTarget, *, gradient: bool
    ) -> None:
        super().__init__()
        self.task, self.model, self.target, self.gradient = task, model, target, gradient

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        facet = EXPLAIN.of(self.task)
        score = facet.score(self.task, self.model, images, self.target, gradient=self.gradient)
        return score.reshape(-1, 1)


def score_fn(task: Task, model: nn.Module, target: ExplainTarget) -> Callable[..., torch.Tensor]:
    """(B, 3, H, W) in [0, 1] -> (B,) probability-like scores, without gradients."""

    facet = EXPLAIN.of(task)

    @torch.no_grad()
    def score(images: torch.Tensor) -> torch.Tensor:
        return facet.score(task, model, images, target).float().cpu()

    return score


def token_grid(tokens: int) -> tuple[int, int] | None:
    """(prefix tokens, grid side) of a ViT sequence of `tokens`, if it is one."""
    for prefix in (0, 1, 2):
        side = math.isqrt(tokens - prefix) if tokens > prefix else 0
        if side >= 2 and side * side == tokens - prefix:
            return prefix, side
    return None


def tokens_to_map(prefix: int, side: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def reshape(x: torch.Tensor) -> torch.Tensor:
        x = x[:, prefix:, :]
        return x.reshape(x.shape[0], side, side, x.shape[2]).permute(0, 3, 1, 2)

    return reshape


def _spatial(out: object, size: tuple[int, int]) -> bool:
    """A feature map of an image of `size` (H, W): (B, C, h, w) with h <= H and w in the
    image's aspect ratio (so attention's (B, heads, tokens, dim) is not one), or ViT tokens."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return False
    if out.ndim == 4:
        h, w = out.shape[-2:]
        return 2 <= h <= size[0] and w >= 2 and abs(w - size[1] * h / size[0]) <= 1
    return out.ndim == 3 and token_grid(out.shape[1]) is not None


def _in_head(name: str, head: tuple[str, ...]) -> bool:
    """A module of the model's head: under a `ModelSpec.head` prefix, or under a part named
    like one (head, heads, roi_heads, segmentation_head), so a CAM reads the features the
    head reads rather than the head's own outputs; or inside an attention block."""
    if any(name == h or name.startswith(h + ".") for h in head):
        return True
    parts = name.split(".")
    return any(p.endswith(("head", "heads")) or p in _ATTENTION for p in parts)


#: parts whose insides are attention (heads x tokens x dims), never a map of the image
_ATTENTION = {"attn", "attention", "self_attention"}


def cam_layer(
    target_model: TargetModel, image: torch.Tensor, head: tuple[str, ...] = ()
) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor] | None, str]:
    """The CAM layer of `target_model.model` for `image` (1, 3, H, W) in [0, 1]:
    (module, reshape transform or None, its dotted name)."""
    model = target_model.model
    size = (int(image.shape[-2]), int(image.shape[-1]))
    order: list[tuple[str, nn.Module, torch.Tensor]] = []
    hooks = []

    def keep(name: str, module: nn.Module) -> Callable[..., None]:
        def hook(_m: nn.Module, _inputs: object, out: object) -> None:
            if _spatial(out, size) and out.requires_grad:
                out.retain_grad()
                order.append((name, module, out))

        return hook

    for name, module in model.named_modules():
        if not name or _in_head(name, head):
            continue
        hooks.append(module.register_forward_hook(keep(name, module)))
    try:
        with torch.enable_grad():
            target_model(image.detach().clone().requires_grad_(True)).sum().backward()
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    for name, module, out in reversed(order):
        grad = out.grad
        if grad is None:
            continue
        if out.ndim == 3:
            prefix, side = token_grid(out.shape[1])  # type: ignore[misc]
            reach = grad[:, prefix:].abs().sum(-1)
            transform = tokens_to_map(prefix, side)
        else:
            reach = grad.abs().sum(1)
            transform = None
        if int((reach > 0).sum()) >= 2:
            return module, transform, name
    raise RecogError(f"{type(model).__name__}: no spatial layer for a class-activation map")
