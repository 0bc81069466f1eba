"""What a training step minimizes: the `TrainingObjective` the trainer calls, and the plain one.

The trainer calls `objective.loss(task, net, model, batch)` where it would call
`task.loss(net, batch)`, and `objective.validate` after each clean validation;
adversarial training (`recog.robust.training`) is one such objective, handed in by
`recog.api`, so the engine never imports what it does.  `selects` names the validation
column the best epoch (and early stopping) is judged on: the task's primary metric, or,
for adversarial training, its robust twin.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from recog.engine.distributed import DistContext
from recog.tasks.base import Task
from recog.types import Batch


class TrainingObjective(Protocol):
    def loss(
        self, task: Task, net: nn.Module, model: nn.Module, batch: Batch
    ) -> dict[str, torch.Tensor]:
        """Training losses of `batch` (`loss` is back-propagated); `net` may be the DDP
        wrapper of `model`."""
        ...

    def validate(
        self, model: nn.Module, task: Task, loader: DataLoader, ctx: DistContext
    ) -> dict[str, float]:
        """Columns added to the epoch's row after the clean validation."""
        ...

    def selects(self, primary: str) -> str:
        """The validation column the best epoch is picked on (`primary`: the task's)."""
        ...


class TaskObjective:
    """Plain training: the task's own loss, nothing added to validation."""

    def loss(
        self, task: Task, net: nn.Module, model: nn.Module, batch: Batch
    ) -> dict[str, torch.Tensor]:
        return task.loss(net, batch)

    def validate(
        self, model: nn.Module, task: Task, loader: DataLoader, ctx: DistContext
    ) -> dict[str, float]:
        return {}

    def selects(self, primary: str) -> str:
        return primary
