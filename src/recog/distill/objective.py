"""`DistillObjective`: the training objective `--teacher RUN` hands the engine.

The engine calls `objective.loss(task, net, model, batch)` where it would call
`task.loss(net, batch)`; it never learns that a teacher is there.  What differs
by task (which outputs are matched, and how) is the distill facet's `loss`
(`recog.distill.facet`); what a teacher must be to teach (same task, same classes,
same preprocessing, and whatever the facet adds in `check_teacher`) is checked once, before training,
by `distill_objective`.

The blend is Hinton et al.'s (2015): loss = (1 - w) * task loss + w * KD, with
w = `distill_weight` (default 0.5) and the KD term at `distill_temperature`
(default 4).  The teacher is frozen, in eval mode, run under no_grad on the very
inputs the student sees (the same normalization and augmentation, Mixup included).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from recog.config import TrainConfig
from recog.distill.facet import DISTILL, Teacher
from recog.engine.objective import TaskObjective
from recog.errors import RecogError
from recog.tasks.base import Task
from recog.types import Batch


class DistillObjective(TaskObjective):
    """The task's losses with `loss` the blend of its own total and the distillation term;
    `task_loss` and `kd` (and the task's `kd_*` parts) ride along, detached, as the
    epoch row's `train_*` columns.  Validation and the best epoch's column are plain
    training's (`TaskObjective`)."""

    def __init__(self, teacher_model: nn.Module, task: Task, weight: float, temperature: float):
        if not 0 < weight <= 1 or not temperature > 0:
            raise RecogError(
                f"distillation needs 0 < weight <= 1 and temperature > 0, not {weight}, "
                f"{temperature}"
            )
        self.teacher = teacher_model.eval().requires_grad_(False)
        self.task, self.weight, self.temperature = task, float(weight), float(temperature)

    def _teacher_on(self, device: torch.device) -> nn.Module:
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device, memory_format=torch.channels_last)
        return self.teacher.eval()

    def loss(
        self, task: Task, net: nn.Module, model: nn.Module, batch: Batch
    ) -> dict[str, torch.Tensor]:
        teacher = self._teacher_on(batch.images.device)
        parts = DISTILL.of(task).loss(task, net, teacher, batch, temperature=self.temperature)
        kd = parts.pop("kd")
        own = parts["loss"]
        blend = (1.0 - self.weight) * own + self.weight * kd
        return {**parts, "loss": blend, "task_loss": own.detach(), "kd": kd.detach()}


def distill_objective(
    cfg: TrainConfig, task: Task, model: nn.Module, class_names: list[str], teacher: Any
) -> DistillObjective:
    """The objective of `cfg.teacher`, after checking that `teacher` (the Recognizer
    `recog.load` rebuilt from that run) can teach this run; a one-line RecogError naming
    the teacher's file and the problem otherwise."""
    run = teacher.run_dir
    if teacher.config.task != cfg.task:
        raise RecogError(
            f"{run / 'config.yaml'}: the teacher is a {teacher.config.task} run and the "
            f"student trains {cfg.task}; a teacher must be of the same task"
        )
    if list(teacher.class_names) != list(class_names):
        raise RecogError(
            f"{run / 'labels.json'}: the teacher's classes {_names(teacher.class_names)} are not "
            f"the student's {_names(class_names)} (the same names in the same order)"
        )
    same_input = torch.equal(teacher.task.mean, task.mean) and torch.equal(
        teacher.task.std, task.std
    )
    if not same_input:
        raise RecogError(
            f"{run / 'config.yaml'}: the teacher ({teacher.config.model}) normalizes its input "
            f"differently from the student ({cfg.model}); pick a teacher of the same family"
        )
    try:
        distiller = DISTILL.of(task)
    except RecogError as exc:  # named after the teacher's run, as every check here is
        raise RecogError(f"{run}: {exc}") from None
    taught = Teacher(teacher.model, teacher.config.img_size, str(run))
    distiller.check_teacher(task, model, taught, img_size=cfg.img_size)
    return DistillObjective(
        teacher.model, task, float(cfg.distill_weight), float(cfg.distill_temperature)
    )


def _names(names: list[str], shown: int = 6) -> str:
    listed = ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
    return f"[{listed}] ({len(names)})"
