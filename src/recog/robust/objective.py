"""What an attack differentiates: the model's loss mode, the task's objectives on [0, 1]
pixels, and the check that a gradient reaches the input at all.

recog's own code, because no attack library covers it: the detectors' and segmenters'
objective is the task's own training loss against the ground truth (the robust facet's
`attack_loss`, `recog.robust.facet`), and torchvision's detectors return their losses only in train mode.
`loss_mode` therefore puts the model in train mode with every layer whose train-mode
behaviour is random or batch-dependent (batch norm, dropout, drop-path) in eval mode,
so the loss is a deterministic, per-image function of the input, as an attack needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

from recog.confidence.facet import CONFIDENCE
from recog.errors import RecogError
from recog.robust.facet import ROBUST
from recog.tasks.base import Task
from recog.types import Batch

#: float images (B, 3, H, W) in [0, 1] -> the scalar an attack raises
Objective = Callable[[torch.Tensor], torch.Tensor]

#: layers whose train mode would make the attacked loss random or depend on the batch
_STOCHASTIC_NAMES = ("DropPath", "StochasticDepth", "DropBlock2d")


def _stochastic(module: nn.Module) -> bool:
    return isinstance(module, _NormBase | _DropoutNd) or type(module).__name__ in _STOCHASTIC_NAMES


@contextmanager
def loss_mode(model: nn.Module) -> Iterator[nn.Module]:
    """`model` answering its training losses, deterministically (see the module docstring);
    every module's mode is restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.train()
    for module in model.modules():
        if _stochastic(module):
            module.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def with_images(batch: Batch, images: torch.Tensor) -> Batch:
    return Batch(images, batch.targets, batch.truth, batch.meta)


def loss_objective(task: Task, model: nn.Module, batch: Batch) -> Objective:
    """The task's own loss against `batch`'s ground truth (untargeted attacks)."""

    facet = ROBUST.of(task)

    def objective(images: torch.Tensor) -> torch.Tensor:
        with loss_mode(model):
            return facet.attack_loss(task, model, with_images(batch, images))

    return objective


def vanish_objective(task: Task, model: nn.Module) -> Objective:
    """Minus (the detector's loss against an empty ground truth, `vanish_loss`, plus
    its kept boxes' squared scores, `vanish_score`, the robust facet's): raising it makes the objects
    vanish.  The loss reaches every candidate before NMS; the scores are what is shown."""

    facet = ROBUST.of(task)

    def objective(images: torch.Tensor) -> torch.Tensor:
        with loss_mode(model):
            empty_truth = facet.vanish_loss(task, model, images)
        with eval_mode(model):
            shown = facet.vanish_score(task, model, images).sum()
        return -(empty_truth + shown)

    return objective


def targeted_objective(task: Task, model: nn.Module, label: int) -> Objective:
    """Minus the cross-entropy towards class `label` (class-logit models only)."""
    if not CONFIDENCE.has(task):
        raise RecogError(
            f"--targeted needs a model that answers class logits; {task.name} models do not "
            "(for a detector, --attack vanish removes its objects)"
        )

    def objective(images: torch.Tensor) -> torch.Tensor:
        with eval_mode(model):
            logits = model(task.normalize(images)).float()
        wanted = torch.full((len(images),), int(label), dtype=torch.long, device=images.device)
        return -F.cross_entropy(logits, wanted)

    return objective


def gradient_problem(objective: Objective, images: torch.Tensor) -> str | None:
    """Why no attack can follow the objective's gradient at `images`, or None when a usable
    gradient reaches them: a model with a non-differentiable input step (rounding,
    quantizing, a detached copy) would otherwise be scored as robust."""
    x = images.detach().float().clone().requires_grad_(True)
    with torch.enable_grad():
        value = objective(x)
        if not value.requires_grad:
            return "the model's output does not depend differentiably on its input"
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    if grad is None:
        return "the model's output does not depend differentiably on its input"
    if not bool(torch.isfinite(grad).all()):
        return "the gradient with respect to the input is not finite"
    if float(grad.abs().max()) == 0.0:
        return "the gradient with respect to the input is zero everywhere (a rounding or quantizing step?)"
    return None
