"""Which training objective a run's config asks for: plain, adversarial or distilled.

`recog.api.train` hands the engine what `training_objective` returns; the engine only
calls it.  One objective at a time: `--teacher` with `--adv-train` is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from recog.config import NONE, TrainConfig
from recog.engine.objective import TrainingObjective
from recog.errors import RecogError
from recog.tasks.base import Task


def training_objective(
    cfg: TrainConfig,
    task: Task,
    model: nn.Module,
    class_names: list[str],
    *,
    load_run: Callable[..., Any],
) -> TrainingObjective | None:
    """The objective of `cfg` (None: the task's own loss).  `load_run` is `recog.load`,
    which rebuilds the teacher's run (passed in: this module sits under `recog.api`)."""
    from recog.robust.training import training_objective as adversarial

    if cfg.teacher == NONE:
        return adversarial(cfg, task)
    if cfg.adv_train != NONE:
        raise RecogError(
            "--teacher and --adv-train: one training objective at a time (distil first, "
            "then fine-tune the distilled run with --adv-train and --weights)"
        )
    from recog.distill import distill_objective

    try:
        teacher = load_run(cfg.teacher, device="cpu")
    except RecogError as exc:
        raise RecogError(f"--teacher {exc}") from None
    return distill_objective(cfg, task, model, class_names, teacher)
