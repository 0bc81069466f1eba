"""`recog attack` / `Recognizer.attack`: measure, write `RUN/robustness/`, update the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from recog.robust import output
from recog.robust.measure import AttackPlan, measure
from recog.tasks.base import Task


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
