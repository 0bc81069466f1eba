"""What distillation asks of a task: whether a teacher can teach, and the loss with its KD term.

`DISTILL.of(task)` answers for classifiers (Hinton et al. 2015) and for
recog's YOLO (the teacher's per-point class probabilities plus Localization
Distillation on the DFL bins); other tasks decline in one sentence.  Mask
R-CNN's instance task is a detector here, as before: its check asks for a
recog YOLO student and says so.  The divergences are `recog.distill.divergences`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from recog.distill.divergences import bins_kl, sigmoid_kl, softened_kl
from recog.errors import RecogError
from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.facets import FacetTable
from recog.types import Batch


@dataclass(frozen=True)
class Teacher:
    """A teacher run as the checks see it: its network, the input size it was trained at,
    and its folder, which names it in every refusal."""

    model: nn.Module
    img_size: int
    source: str


class DistillFacet(Protocol):
    def check_teacher(
        self, task: Task, student: nn.Module, teacher: Teacher, *, img_size: int
    ) -> None:
        """Nothing, or a RecogError naming the teacher's run when `teacher` cannot teach
        `student` (at `img_size`) at this task; run before any training."""
        ...

    def loss(
        self,
        task: Task,
        student: nn.Module,
        teacher: nn.Module,
        batch: Batch,
        *,
        temperature: float,
    ) -> dict[str, torch.Tensor]:
        """The task's own training losses of `batch` (`loss` its total, one student forward)
        with `kd` added: the distillation term against `teacher` (in eval mode, run under
        no_grad on the same normalized, augmented inputs), differentiable in the student
        only; other `kd_*` entries are its detached parts.  `student` may be a DDP wrapper."""
        ...


class ClassifyDistill:
    def check_teacher(
        self, task: Task, student: nn.Module, teacher: Teacher, *, img_size: int
    ) -> None:
        """Any classifier of the same classes teaches, if it answers at the student's input
        size (a model with a fixed-size head may not: tried once on a blank image)."""
        try:
            with torch.no_grad():
                teacher.model.eval()(torch.zeros(1, 3, img_size, img_size))
        except (RuntimeError, AssertionError, ValueError) as exc:  # timm's size check asserts
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise RecogError(
                f"{teacher.source}: the teacher (trained at {teacher.img_size} px) cannot answer "
                f"at the student's {img_size} px ({first}); give --img-size {teacher.img_size}"
            ) from None

    def loss(
        self,
        task: ClassifyTask,
        student: nn.Module,
        teacher: nn.Module,
        batch: Batch,
        *,
        temperature: float,
    ) -> dict[str, torch.Tensor]:
        """Cross-entropy of the student (as the task's `loss`) and Hinton's softened KL to the
        teacher's logits on the same (mixed) images (`softened_kl`)."""
        # the very inputs the task's loss trains on (normalized, Mixup/CutMix when training):
        # the task's one rule for them, so the teacher sees what the student sees
        x, y = task.inputs(student, batch)
        logits = student(x).float()
        with torch.no_grad():
            target = teacher(x).float()
        loss = F.cross_entropy(logits, y, label_smoothing=task.label_smoothing)
        return {"loss": loss, "kd": softened_kl(logits, target, temperature)}


class DetectDistill:
    def check_teacher(
        self, task: Task, student: nn.Module, teacher: Teacher, *, img_size: int
    ) -> None:
        """recog's YOLO teaches recog's YOLO at the same input size: the same point grid, so
        each student point has its teacher point."""
        from recog.models.yolo import YOLO

        if not isinstance(student, YOLO):
            raise RecogError(
                "--teacher: detection distillation needs a recog YOLO student (yolo_n, yolo_s)"
            )
        if not isinstance(teacher.model, YOLO):
            raise RecogError(
                f"{teacher.source}: the teacher is not a recog YOLO (yolo_n, yolo_s); detection "
                "distillation matches the two models point by point"
            )
        if teacher.img_size != img_size:
            raise RecogError(
                f"{teacher.source}: the teacher was trained at {teacher.img_size} px and the "
                f"student trains at {img_size} px; give --img-size {teacher.img_size}"
            )

    def loss(
        self,
        task: Task,
        student: nn.Module,
        teacher: nn.Module,
        batch: Batch,
        *,
        temperature: float,
    ) -> dict[str, torch.Tensor]:
        """YOLO's own losses and, per point of the shared anchor-free grid, the Bernoulli KL
        to the teacher's class probabilities (`kd_cls`) plus LD's KL on the DFL bins of each
        side at `temperature` (`kd_box`), both weighted by the teacher's confidence (its
        highest class probability at the point) and divided by that weight's sum, as YOLO's
        own losses divide by the sum of their target scores (`recog.distill.divergences`)."""
        inner = getattr(student, "module", student)  # DDP: the wrapper runs the forward
        x = task.normalize(batch.images)
        maps: list[list[torch.Tensor]] = []
        # the head's output is caught on its way to the loss: one student forward, through
        # the wrapper (DDP's gradient hooks), for both the task loss and the distillation
        hook = inner.head.register_forward_hook(lambda _m, _i, out: maps.append(out))
        try:
            parts = student(x, batch.targets)
        finally:
            hook.remove()
        with torch.no_grad():
            t_dfl, t_cls, _, _ = teacher.split(teacher.forward_maps(x))
        s_dfl, s_cls, _, _ = inner.split(maps[-1])
        weight = t_cls.float().sigmoid().amax(-1)  # (B, A)
        norm = weight.sum().clamp(min=1.0)
        kd_cls = sigmoid_kl(s_cls, t_cls).sum() / norm
        kd_box = (bins_kl(s_dfl, t_dfl, temperature) * weight).sum() / norm
        return {
            **parts,
            "kd": kd_cls + kd_box,
            "kd_cls": kd_cls.detach(),
            "kd_box": kd_box.detach(),
        }


DISTILL: FacetTable[DistillFacet] = FacetTable(
    "{task} models have no distillation",
    # Mask R-CNN's instances are a detector here, as before: the check asks for a YOLO student
    classify=ClassifyDistill, detect=DetectDistill, instance=DetectDistill,
)  # fmt: skip
