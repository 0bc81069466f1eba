"""Adversarial training: the training objective `--adv-train` hands the engine.

The engine calls `objective.loss(task, net, model, batch)` where it would call
`task.loss(net, batch)`, and `objective.validate(...)` after each clean validation;
it never learns what the objective does or which task it serves.  The attack of each
batch is generated on the plain model (not the DDP wrapper: only the final loss is
reduced across ranks), with the model in its loss mode (`recog.robust.objective`).

- `pgd`: Madry et al. (2018): train on PGD-`steps` examples, step 2.5 eps / steps.
- `fgsm-rs`: Wong et al. (2020), "fast is better than free": one FGSM step of 1.25 eps
  from a uniform random start, projected back into the eps-ball.
- `--adv-mix W` (pgd, fgsm-rs): the loss is W times the clean images' plus 1 - W times
  the attacked ones' (Goodfellow et al. 2015 train on half each); 0, the default, is
  Madry's attacked-only loss.  A detector fine-tuned on attacked images only loses its
  clean mAP faster than it gains robust mAP (docs/robustness.md); the mix holds it.
- `trades`: Zhang et al. (2019): the clean loss plus beta = 6 times the KL divergence
  between the predictions on the clean and on the adversarial image, the adversary
  maximizing that KL; class-logit models only.

Validation adds `robust_<metric>` columns: PGD-10 at the training eps, on the whole
validation split, each epoch (results.csv, the report's curves).  The best epoch is the
one with the best robust primary metric, not the clean one: robust accuracy peaks early
and then falls while clean accuracy keeps rising ("robust overfitting", Rice et al.
2020), and a run trained for robustness must keep its most robust weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from recog.confidence.facet import CONFIDENCE
from recog.config import TrainConfig
from recog.engine.distributed import DistContext
from recog.engine.evaluator import evaluate
from recog.errors import RecogError
from recog.robust import attacks
from recog.robust.measure import metric_names
from recog.robust.objective import eval_mode, loss_objective, with_images
from recog.tasks.base import Task
from recog.types import Batch

TRADES_BETA = 6.0
#: PGD steps of the per-epoch robust validation
VALIDATION_STEPS = 10


class AdversarialObjective:
    """Each training batch attacked first; see the module docstring."""

    def __init__(self, kind: str, eps: float, steps: int, task: Task, mix: float = 0.0) -> None:
        if kind == "trades" and not CONFIDENCE.has(task):
            raise RecogError(
                f"--adv-train trades needs a model that answers class logits; {task.name} "
                "models train with --adv-train pgd or fgsm-rs"
            )
        if kind == "trades" and mix:
            raise RecogError("--adv-mix: trades weighs its clean loss itself (pgd or fgsm-rs)")
        self.kind, self.eps, self.steps, self.mix = kind, float(eps), int(steps), float(mix)

    def _attacked(
        self, task: Task, model: nn.Module, batch: Batch, clean: torch.Tensor
    ) -> torch.Tensor:
        if self.kind == "fgsm-rs":
            return attacks.pgd(loss_objective(task, model, batch), clean, eps=self.eps,
                               alpha=1.25 * self.eps, steps=1, random_start=True)  # fmt: skip
        return attacks.pgd(loss_objective(task, model, batch), clean, eps=self.eps,
                           alpha=attacks.default_alpha(self.eps, self.steps), steps=self.steps)  # fmt: skip

    def loss(
        self, task: Task, net: nn.Module, model: nn.Module, batch: Batch
    ) -> dict[str, torch.Tensor]:
        clean = batch.images.float().div(255.0)
        if self.kind != "trades":
            adv = self._attacked(task, model, with_images(batch, clean), clean)
            attacked = task.loss(net, with_images(batch, adv))
            if not self.mix:
                return attacked
            plain = task.loss(net, with_images(batch, clean))
            blend = self.mix * plain["loss"] + (1 - self.mix) * attacked["loss"]
            return {**attacked, "loss": blend, "clean_loss": plain["loss"].detach()}
        with eval_mode(model), torch.no_grad():
            target = F.softmax(model(task.normalize(clean)).float(), dim=1)
        adv = (clean + 0.001 * torch.randn_like(clean)).clamp(0, 1)

        def divergence(images: torch.Tensor) -> torch.Tensor:
            with eval_mode(model):
                logits = model(task.normalize(images)).float()
            return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="sum")

        adv = attacks.pgd(divergence, adv, eps=self.eps, alpha=attacks.default_alpha(self.eps, self.steps),
                          steps=self.steps, random_start=False)  # fmt: skip
        adv = attacks.project(adv, clean, self.eps, "linf")
        parts = task.loss(net, batch)
        clean_logits = net(task.normalize(clean)).float()
        adv_logits = net(task.normalize(adv)).float()
        robust = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1),
                          reduction="batchmean")  # fmt: skip
        return {**parts, "loss": parts["loss"] + TRADES_BETA * robust, "trades_kl": robust.detach()}

    def selects(self, primary: str) -> str:
        return f"robust_{primary}"

    def validate(
        self, model: nn.Module, task: Task, loader: Any, ctx: DistContext
    ) -> dict[str, float]:
        alpha = attacks.default_alpha(self.eps, VALIDATION_STEPS)

        def perturb(batch: Batch) -> torch.Tensor:
            clean = batch.images.float().div(255.0)
            return attacks.pgd(loss_objective(task, model, batch), clean, eps=self.eps,
                               alpha=alpha, steps=VALIDATION_STEPS)  # fmt: skip

        values = evaluate(model, task, loader, ctx, perturb=perturb).compute()
        return {f"robust_{k}": float(values[k]) for k in metric_names(task) if k in values}


def training_objective(cfg: TrainConfig, task: Task) -> AdversarialObjective | None:
    """The objective of `cfg.adv_train`, or None for plain training."""
    if cfg.adv_train == "none":
        return None
    return AdversarialObjective(str(cfg.adv_train), float(cfg.adv_eps), int(cfg.adv_steps), task,
                                float(cfg.adv_mix))  # fmt: skip
