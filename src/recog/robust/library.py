"""Classifier attacks through torchattacks: FGSM, PGD (L-inf and L2), CW, Square and the
standard AutoAttack, wrapped, not re-written.

They apply where the task's model answers one row of class logits per image
(`CONFIDENCE.has(task)`, `recog.confidence.facet`).  The wrapped model takes [0, 1] pixels and normalizes inside
(`PixelClassifier`), so eps is in pixel units whatever the run's mean and std.

AutoAttack is torchattacks' port of Croce and Hein's standard suite (APGD-CE,
APGD-T, FAB-T, Square): the reference `autoattack` package is published on GitHub only,
not on a package index this project may install from.  torchattacks is installed
without its declared dependencies (its metadata pins requests~=2.25.1, which never gets
imported and which timm's huggingface_hub refuses); `require_torchattacks` says how.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recog.errors import RecogError
from recog.tasks.base import Task

#: attacks torchattacks provides, and the norms each supports there
LIBRARY_NORMS: dict[str, tuple[str, ...]] = {
    "fgsm": ("linf",),
    "pgd": ("linf", "l2"),
    "cw": ("l2",),
    "square": ("linf", "l2"),
    "autoattack": ("linf", "l2"),
}
#: library attacks that accept a target class
TARGETED = ("fgsm", "pgd", "cw")
#: attacks that find a smallest perturbation instead of one within a given eps
MINIMAL = ("cw",)


class PixelClassifier(nn.Module):
    """The run's classifier on [0, 1] pixels: normalization inside, class logits out."""

    def __init__(self, task: Task, model: nn.Module) -> None:
        super().__init__()
        self.task, self.model = task, model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.requires_grad:
            # the run's channels-last model hands back a channels-last input gradient, which
            # torchattacks' L2 attacks `.view` (an error); they get it in the usual layout
            images.register_hook(lambda grad: grad.contiguous())
        return self.model(self.task.normalize(images)).float()


def require_torchattacks() -> Any:
    try:
        import torchattacks
    except ImportError:
        raise RecogError(
            "classifier attacks need torchattacks: pip install --no-deps 'torchattacks>=3.5,<4'"
        ) from None
    return torchattacks


def build(
    name: str,
    classifier: PixelClassifier,
    *,
    eps: float,
    norm: str,
    steps: int,
    alpha: float,
    seed: int,
    targeted: bool,
) -> Any:
    """The torchattacks attack `name` on `classifier`, called as `attack(images, labels)`
    (with `targeted`, the labels are the target classes)."""
    ta = require_torchattacks()
    n_classes = classifier.task.num_classes
    big = {"linf": "Linf", "l2": "L2"}[norm]
    if name == "fgsm":
        attack = ta.FGSM(classifier, eps=eps)
    elif name == "pgd" and norm == "linf":
        attack = ta.PGD(classifier, eps=eps, alpha=alpha, steps=steps, random_start=True)
    elif name == "pgd":
        attack = ta.PGDL2(classifier, eps=eps, alpha=alpha, steps=steps, random_start=True)
    elif name == "cw":
        attack = ta.CW(classifier, c=1.0, kappa=0.0, steps=steps, lr=0.01)
    elif name == "square":
        attack = ta.Square(classifier, norm=big, eps=eps, n_queries=steps, n_restarts=1, seed=seed)
    elif name == "autoattack":
        attack = ta.AutoAttack(
            classifier, norm=big, eps=eps, version="standard", n_classes=n_classes, seed=seed
        )
    else:  # pragma: no cover - the caller checks the names
        raise RecogError(f"no library attack {name!r}")
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    return attack
