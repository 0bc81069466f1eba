"""`recog attack` / `Recognizer.attack`: measure, write `RUN/robustness/`, update the report;
and `attack_image`, one unlabelled image attacked for the web page (`POST /v1/attack`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from recog.errors import RecogError
from recog.robust import output
from recog.robust.measure import AttackPlan, measure
from recog.tasks.base import Task
from recog.types import Prediction, Sample


def attack_run(
    task: Task,
    model: nn.Module,
    dataset: Dataset,
    plan: AttackPlan,
    *,
    save_dir: Path,
    batch_size: int,
    device: torch.device | str = "cpu",
    data_name: str = "",
    report: Path | None = None,
) -> dict[str, Any]:
    """The robustness record (what `robustness.json` holds) of `model` under `plan`."""
    from recog.report.html import upsert_section

    plan.check(task)
    result = measure(task, model, dataset, plan, batch_size=batch_size, device=device,
                     data=data_name)  # fmt: skip
    rows = output.example_rows(task, model, result, device)
    record = output.write(save_dir, result, rows)
    if report is not None and report.is_file():
        upsert_section(report, "robustness", "Robustness", output.report_section(save_dir, record))
    return record


@dataclass
class AttackedImage:
    """One image and its adversarial version, each with the model's answer (input size)."""

    image: torch.Tensor  # (3, H, W) uint8, at the model's input size
    adversarial: torch.Tensor  # (3, H, W) uint8
    clean: Prediction
    attacked: Prediction
    attack: str
    eps: float


#: attacks of one unlabelled image (the web page's): no library attack needs labels here
IMAGE_ATTACKS = ("pgd", "fgsm", "vanish")


def attack_image(
    task: Task, model: nn.Module, image: torch.Tensor, *, attack: str, eps: float, steps: int,
    device: torch.device | str = "cpu",
) -> AttackedImage:  # fmt: skip
    """`image` (decoded, any size) attacked with the model's own answer as its ground truth
    (the robust facet's `as_target`; `vanish` needs none): what the model answers once it is perturbed."""
    from recog.robust import attacks
    from recog.robust.facet import ROBUST
    from recog.robust.objective import loss_objective, vanish_objective

    if attack not in IMAGE_ATTACKS:
        raise RecogError(f"attack {attack!r}: one image takes {', '.join(IMAGE_ATTACKS)}")
    prepared, _ = task.prepare(image)
    model = model.to(device).eval()
    x = prepared[None].to(device)
    with torch.inference_mode():
        clean = task.predict(model, x)[0]
    truth = ROBUST.of(task).as_target(task, clean)
    sample = Sample(prepared, truth, orig_size=tuple(prepared.shape[-2:]))
    sample.meta = {"scale": 1.0, "truth": sample.target}
    batch = task.collate([sample]).to(device)
    clean01 = x.float() / 255
    if attack == "vanish":
        objective = vanish_objective(task, model)
    else:
        objective = loss_objective(task, model, batch)
    if attack == "fgsm":
        adv = attacks.fgsm(objective, clean01, eps=eps)
    else:
        adv = attacks.pgd(objective, clean01, eps=eps, alpha=attacks.default_alpha(eps, steps),
                          steps=steps)  # fmt: skip
    adv_u8 = (adv.clamp(0, 1) * 255).round().to(torch.uint8)
    with torch.inference_mode():
        attacked = task.predict(model, adv_u8)[0]
    return AttackedImage(prepared, adv_u8[0].cpu(), clean, attacked, attack, eps)
