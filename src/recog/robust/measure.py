"""The robustness curve: the task's metric on clean images and under an attack at each eps.

One attack plan (`AttackPlan`) and one loop for every task: each batch of the chosen
images is attacked (the library's attack where the model answers class logits, recog's
own PGD or Square on the task's loss otherwise, `recog.robust.attacks` and `square`)
and the engine's evaluator measures the task's metrics on the result.  Before any
number is trusted, the plan's objective must pass `gradient_problem` on the first
batch, and the curve must fall as eps grows (`checks`): gradient masking must not read
as robustness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from recog.confidence.facet import CONFIDENCE
from recog.console import progress_bar
from recog.engine.distributed import DistContext
from recog.engine.evaluator import evaluate
from recog.errors import RecogError
from recog.robust import attacks, library
from recog.robust.objective import (
    Objective,
    gradient_problem,
    loss_objective,
    targeted_objective,
    vanish_objective,
)
from recog.robust.square import square
from recog.tasks.base import Task
from recog.types import Batch

#: every attack `recog attack` knows
ATTACKS = ("fgsm", "pgd", "cw", "autoattack", "square", "vanish")
#: attacks that follow no gradient (a check on the gradient attacks' numbers)
BLACK_BOX = ("square",)
DEFAULT_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
#: a robust metric may rise this much with eps (sampling noise) before the curve is flagged
RISE_TOLERANCE = 0.01


@dataclass(frozen=True)
class AttackPlan:
    attack: str = "pgd"
    norm: str = "linf"
    eps: tuple[float, ...] = DEFAULT_EPS
    steps: int = 10
    alpha: float | None = None  # None: 2.5 eps / steps
    targeted: int | None = None  # a class index
    images: int = 200
    seed: int = 0

    def check(self, task: Task) -> None:
        """A RecogError for a plan the task's model cannot be attacked with."""
        if self.attack not in ATTACKS:
            raise RecogError(f"--attack must be one of {', '.join(ATTACKS)}, not {self.attack!r}")
        if self.norm not in attacks.NORMS:
            raise RecogError(f"--norm must be one of {', '.join(attacks.NORMS)}, not {self.norm!r}")
        if not self.eps or any(not 0 < e < math.inf for e in self.eps):
            raise RecogError("--eps: give one or more positive radii, e.g. 1/255,2/255")
        if self.norm == "linf" and any(e > 1 for e in self.eps):
            raise RecogError("--eps: an L-inf radius is at most 1 (pixels lie in [0, 1])")
        if self.steps < 1 or self.images < 1:
            raise RecogError("--steps and --images must be at least 1")
        if self.attack in ("cw", "autoattack") and not CONFIDENCE.has(task):
            raise RecogError(
                f"--attack {self.attack} attacks classifiers only; {task.name} models take "
                "pgd, fgsm or square on their own loss (detectors also vanish)"
            )
        if self.attack == "square" and not CONFIDENCE.has(task) and self.norm != "linf":
            raise RecogError("--attack square on detectors/segmenters takes --norm linf")
        if CONFIDENCE.has(task) and self.attack in library.LIBRARY_NORMS:
            if self.norm not in library.LIBRARY_NORMS[self.attack] and self.attack != "fgsm":
                norms = " or ".join(library.LIBRARY_NORMS[self.attack])
                raise RecogError(f"--attack {self.attack} takes --norm {norms}")
        if self.attack == "autoattack" and task.num_classes < 4:
            # APGD-T's targeted DLR loss reads the 3rd and 4th largest logits
            raise RecogError(
                f"--attack autoattack needs at least 4 classes (this model has "
                f"{task.num_classes}): use pgd, cw or square"
            )
        if self.targeted is not None:
            if not CONFIDENCE.has(task):
                raise RecogError(
                    f"--targeted needs class logits; {task.name} models do not answer them "
                    "(--attack vanish removes a detector's objects)"
                )
            if self.attack not in library.TARGETED:
                raise RecogError(f"--attack {self.attack} has no targeted mode")

    def backend(self, task: Task) -> str:
        """ "torchattacks" where the library has the attack for this model, else "recog"."""
        use_library = CONFIDENCE.has(task) and self.attack in library.LIBRARY_NORMS
        if self.attack == "fgsm" and self.norm != "linf":
            use_library = False  # torchattacks' FGSM is L-inf only
        return "torchattacks" if use_library else "recog"

    def alpha_for(self, eps: float) -> float:
        return self.alpha if self.alpha is not None else attacks.default_alpha(eps, self.steps)


@dataclass
class Robustness:
    """What `robustness.json` holds, plus the examples the report shows."""

    attack: str
    norm: str
    backend: str
    steps: int
    images: int
    metric: str
    clean: dict[str, float]
    robust: list[dict[str, float]]
    checks: dict[str, Any]
    seconds: float
    data: str = ""
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "norm": self.norm,
            "backend": self.backend,
            "steps": self.steps,
            "images": self.images,
            "data": self.data,
            "metric": self.metric,
            "clean": self.clean,
            "robust": self.robust,
            "checks": self.checks,
            "seconds": round(self.seconds, 2),
        }


def metric_names(task: Task) -> list[str]:
    """The task's headline metrics that an attack can lower (ECE is not one)."""
    return [str(m) for m in task.scores.headline if str(m) != "ece"]


def objective_for(task: Task, model: nn.Module, plan: AttackPlan, batch: Batch) -> Objective:
    """What the attack raises on `batch` (also what the gradient check differentiates)."""
    if plan.attack == "vanish":
        return vanish_objective(task, model)
    if plan.targeted is not None:
        return targeted_objective(task, model, plan.targeted)
    return loss_objective(task, model, batch)


def perturber(
    task: Task, model: nn.Module, plan: AttackPlan, eps: float, cache: dict[int, Any]
) -> Callable[[Batch], torch.Tensor]:
    """batch (uint8 images) -> its attacked float images, for the evaluator.  Minimal-
    perturbation attacks (CW) run once per batch (`cache`); at each eps an image keeps
    its adversarial version only where the perturbation's norm is within eps."""
    backend = plan.backend(task)
    counter = iter(range(1 << 30))

    def perturb(batch: Batch) -> torch.Tensor:
        index = next(counter)
        clean = batch.images.float().div(255.0).contiguous()
        if backend == "torchattacks":
            labels = batch.targets
            if plan.targeted is not None:
                labels = torch.full_like(labels, int(plan.targeted))
            if plan.attack in library.MINIMAL:
                if index not in cache:
                    attack = library.build(
                        plan.attack, library.PixelClassifier(task, model), eps=eps,
                        norm=plan.norm, steps=plan.steps, alpha=plan.alpha_for(eps),
                        seed=plan.seed, targeted=plan.targeted is not None,
                    )  # fmt: skip
                    cache[index] = attack(clean, labels).detach()
                adv = cache[index]
                size = _norm(adv - clean, plan.norm)
                keep = (size <= eps + 1e-6).view(-1, 1, 1, 1)
                return torch.where(keep, adv, clean)
            attack = library.build(
                plan.attack, library.PixelClassifier(task, model), eps=eps, norm=plan.norm,
                steps=plan.steps, alpha=plan.alpha_for(eps), seed=plan.seed,
                targeted=plan.targeted is not None,
            )  # fmt: skip
            return attack(clean, labels).detach()
        objective = objective_for(task, model, plan, batch)
        if plan.attack == "square":  # `steps` is the query budget, as for classifiers
            return square(objective, clean, eps=eps, queries=plan.steps,
                          seed=plan.seed * 1_000_003 + index)  # fmt: skip
        if plan.attack == "fgsm":
            return attacks.fgsm(objective, clean, eps=eps, norm=plan.norm)
        return attacks.pgd(
            objective, clean, eps=eps, alpha=plan.alpha_for(eps), steps=plan.steps, norm=plan.norm
        )

    return perturb


def _norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(p=2, dim=1)


def pick(n_total: int, n: int) -> list[int]:
    """`n` indices spread evenly over `n_total` (all when n >= n_total): every class of a
    sorted validation split is represented."""
    if n >= n_total:
        return list(range(n_total))
    return sorted({int(round(i)) for i in np.linspace(0, n_total - 1, n)})


def checks(clean: dict[str, float], robust: Sequence[dict[str, float]], metric: str,
           gradient: str | None) -> dict[str, Any]:  # fmt: skip
    """Flags that the numbers cannot be trusted as robustness (each with its reason)."""
    flags: list[str] = []
    if gradient is not None:
        flags.append(f"no usable gradient: {gradient}; gradient attacks cannot measure this model")
    values = [row[metric] for row in robust]
    above = [r["eps"] for r in robust if r[metric] > clean[metric] + RISE_TOLERANCE]
    if above:
        flags.append(f"{metric} under attack is above the clean {metric} at eps {above[0]:.4g}")
    rises = [
        robust[i + 1]["eps"]
        for i in range(len(values) - 1)
        if values[i + 1] > values[i] + RISE_TOLERANCE
    ]
    if rises:
        flags.append(
            f"{metric} rises as eps grows (at eps {rises[0]:.4g}): gradient masking suspected"
        )
    if values and clean[metric] > 0 and values[-1] >= clean[metric] - 1e-9 and gradient is None:
        flags.append(f"{metric} does not fall at the largest eps: gradient masking suspected")
    return {
        "gradient_reaches_input": gradient is None,
        "falls_with_eps": not rises and not above,
        "trustworthy": not flags,
        "flags": flags,
    }


def measure(
    task: Task,
    model: nn.Module,
    dataset: Dataset,
    plan: AttackPlan,
    *,
    batch_size: int,
    device: torch.device | str = "cpu",
    examples: int = 4,
    data: str = "",
) -> Robustness:
    """Clean and attacked metrics of `model` on `plan.images` images of `dataset`."""
    from recog.engine.trainer import flat_metrics, seed_all

    plan.check(task)
    n_total = len(dataset)  # type: ignore[arg-type]
    if n_total == 0:
        raise RecogError(f"{data or 'data'}: no images to attack")
    start = time.perf_counter()
    device = torch.device(device)
    model = model.to(device).eval()
    subset = Subset(dataset, pick(n_total, plan.images))
    if plan.backend(task) == "recog" and plan.attack in BLACK_BOX:
        # recog's Square keeps or drops a candidate on the objective of the whole batch (one
        # scalar, the task's loss): one image a batch makes it a search per image
        batch_size = 1
    loader = DataLoader(subset, batch_size=batch_size, collate_fn=task.collate)
    ctx = DistContext(device=device)
    names = metric_names(task)
    metric = str(task.scores.primary)
    first = next(iter(loader)).to(device)
    seed_all(plan.seed)
    gradient = gradient_problem(objective_for(task, model, plan, first), first.images.float() / 255)
    clean = {k: v for k, v in flat_metrics(evaluate(model, task, loader, ctx).compute()).items() if k in names}  # fmt: skip
    robust: list[dict[str, float]] = []
    cache: dict[int, Any] = {}
    shown: list[dict[str, Any]] = []
    if gradient is not None and plan.attack not in BLACK_BOX:
        # no gradient to follow: a gradient attack would leave the images as they are and
        # the model would read as robust; the record says why there is no number instead
        flags = checks(clean, [], metric, gradient)
        return Robustness(
            attack=plan.attack, norm=plan.norm, backend=plan.backend(task), steps=plan.steps,
            images=len(subset), metric=metric, clean=clean,
            robust=[{"eps": float(e), **{k: None for k in clean}} for e in plan.eps],
            checks=flags, seconds=time.perf_counter() - start, data=data,
        )  # fmt: skip
    with progress_bar() as bar:
        for eps in plan.eps:
            bar_id = bar.add_task(f"{plan.attack} eps {eps:.4g}", total=len(subset), info="")
            seed_all(plan.seed)
            perturb = perturber(task, model, plan, eps, cache)
            keep: dict[str, Any] = {}

            def remember(batch: Batch, perturb=perturb, keep=keep) -> torch.Tensor:
                adv = perturb(batch)
                if not keep:
                    keep["clean"], keep["adv"] = batch.images[:examples].cpu(), adv[:examples].cpu()
                return adv

            acc = evaluate(model, task, loader, ctx, perturb=remember,
                           on_batch=lambda n, i=bar_id: bar.advance(i, n))  # fmt: skip
            bar.remove_task(bar_id)
            values = {k: v for k, v in flat_metrics(acc.compute()).items() if k in names}
            robust.append({"eps": float(eps), **values})
            # the bars' own console prints above them (another would write over the live bar)
            bar.console.print(f"  eps {eps:.4g}: {metric} {values.get(metric, math.nan):.4f} "
                      f"(clean {clean.get(metric, math.nan):.4f})", markup=False)  # fmt: skip
            shown = [{"eps": float(eps), "clean": keep["clean"], "adv": keep["adv"]}]
    result = Robustness(
        attack=plan.attack, norm=plan.norm, backend=plan.backend(task), steps=plan.steps,
        images=len(subset), metric=metric, clean=clean, robust=robust,
        checks=checks(clean, robust, metric, gradient), seconds=time.perf_counter() - start,
        data=data, examples=shown,
    )  # fmt: skip
    return result
