"""recog's own gradient attacks (FGSM, PGD; L-inf and L2) on any objective of [0, 1] pixels.

Own code, not a library's: torchattacks and AutoAttack attack classifiers only (a
model answering class logits for a labelled image); here the objective is whatever
`recog.robust.objective` builds from the Task seam (a detector's or a segmenter's own
loss with the ground truth, the "vanish" score), so one PGD serves every task and
adversarial training.  The steps follow Madry et al. (2018) and match torchattacks'
PGD and PGDL2 step for step (same random start, same projection), which a test holds
them to on a classifier.
"""

from __future__ import annotations

import torch

from recog.errors import RecogError
from recog.robust.objective import Objective

NORMS = ("linf", "l2")


def default_alpha(eps: float, steps: int) -> float:
    """Step size 2.5 eps / steps (Madry et al. 2018): the walk can cross the ball and back."""
    return 2.5 * eps / max(1, steps)


def _per_image_norm(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (x.dim() - 1)))


def _gradient(objective: Objective, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = objective(x)
        if not value.requires_grad:
            raise RecogError("the attacked model's output does not depend on its input")
        (grad,) = torch.autograd.grad(value, x, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def project(adv: torch.Tensor, clean: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """`adv` pulled back into the eps-ball around `clean` and into [0, 1]."""
    delta = adv - clean
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        factor = (eps / (_per_image_norm(delta) + 1e-12)).clamp(max=1.0)
        delta = delta * factor
    return (clean + delta).clamp(0, 1).detach()


def fgsm(
    objective: Objective, images: torch.Tensor, *, eps: float, norm: str = "linf"
) -> torch.Tensor:
    """One step of size eps along the gradient's sign (L-inf) or direction (L2)."""
    return pgd(objective, images, eps=eps, alpha=eps, steps=1, norm=norm, random_start=False)


def pgd(
    objective: Objective,
    images: torch.Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    norm: str = "linf",
    random_start: bool = True,
) -> torch.Tensor:
    """Projected gradient ascent on `objective` within the `norm` ball of radius `eps`.

    The random start draws from torch's global generator (seed it for a repeatable attack):
    uniform in the L-inf box, or a uniformly scaled Gaussian direction in the L2 ball.
    """
    if norm not in NORMS:
        raise RecogError(f"--norm must be one of {', '.join(NORMS)}, not {norm!r}")
    clean = images.detach().float()
    adv = clean.clone()
    if random_start:
        if norm == "linf":
            adv = (adv + torch.empty_like(adv).uniform_(-eps, eps)).clamp(0, 1)
        else:
            delta = torch.empty_like(adv).normal_()
            radius = torch.zeros_like(_per_image_norm(delta)).uniform_(0, 1)
            delta = delta / (_per_image_norm(delta) + 1e-12) * radius * eps
            adv = (adv + delta).clamp(0, 1)
    for _ in range(steps):
        grad = _gradient(objective, adv)
        if norm == "linf":
            adv = adv + alpha * grad.sign()
        else:
            adv = adv + alpha * grad / (_per_image_norm(grad) + 1e-10)
        adv = project(adv, clean, eps, norm)
    return adv.detach()
