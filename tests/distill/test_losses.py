"""The distillation terms on fixed tensors: Hinton's KD by hand, and the YOLO terms'
gradient, zero point and ordering, without any training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recog.distill import DistillObjective
from recog.distill.divergences import bins_kl, sigmoid_kl, softened_kl
from recog.distill.facet import DISTILL, Teacher
from recog.errors import RecogError
from recog.models.factory import create_model
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.segment import SegmentTask
from recog.types import Batch


def test_softened_kl_is_hintons_term_by_hand():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    temp = 4.0
    by_hand = 0.0
    for si, ti in zip(s.tolist(), t.tolist(), strict=True):
        zs = sum(math.exp(v / temp) for v in si)
        zt = sum(math.exp(v / temp) for v in ti)
        q = [math.exp(v / temp) / zs for v in si]
        p = [math.exp(v / temp) / zt for v in ti]
        by_hand += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    by_hand = by_hand / 2 * temp**2
    assert softened_kl(s, t, temp).item() == pytest.approx(by_hand, rel=1e-6)
    reference = F.kl_div(
        F.log_softmax(s / temp, 1), F.softmax(t / temp, 1), reduction="batchmean"
    ) * (temp**2)
    assert softened_kl(s, t, temp).item() == pytest.approx(reference.item(), rel=1e-6)


def test_softened_kl_is_zero_with_zero_gradient_at_the_teachers_logits():
    t = torch.randn(4, 5)
    s = t.clone().requires_grad_(True)
    kd = softened_kl(s, t, 2.0)
    kd.backward()
    assert kd.item() == pytest.approx(0.0, abs=1e-6)
    assert s.grad.abs().max().item() < 1e-6


def test_sigmoid_and_bins_kl_vanish_at_the_teacher_and_are_positive_elsewhere():
    t = torch.randn(3, 7)
    assert sigmoid_kl(t, t).abs().max().item() < 1e-6
    assert (sigmoid_kl(torch.randn(3, 7), t) >= -1e-6).all()
    bins = torch.randn(2, 5, 4, 16)
    assert bins_kl(bins, bins, 4.0).abs().max().item() < 1e-5
    assert bins_kl(torch.randn(2, 5, 4, 16), bins, 4.0).min().item() > 0


def _yolo(seed: int, name: str = "yolo_n"):
    torch.manual_seed(seed)
    return create_model(name, num_classes=2, img_size=64)


def _detect_batch() -> Batch:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    targets = [
        {"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.tensor([[20.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])},
    ]
    return Batch(images, targets)


def _detect_task() -> DetectTask:
    return DetectTask(["a", "b"], (0, 0, 0), (1, 1, 1), img_size=64)


def test_yolo_distillation_is_finite_and_trains_the_student_only():
    task, teacher, student = _detect_task(), _yolo(1, "yolo_s"), _yolo(2).train()
    objective = DistillObjective(teacher, task, 0.5, 4.0)
    parts = objective.loss(task, student, student, _detect_batch())
    assert set(parts) >= {"loss", "task_loss", "kd", "kd_cls", "kd_box", "box", "cls", "dfl"}
    assert all(torch.isfinite(v).all() for v in parts.values())
    assert float(parts["kd"]) > 0
    blend = 0.5 * parts["task_loss"] + 0.5 * parts["kd"]
    assert float(parts["loss"].detach()) == pytest.approx(float(blend), rel=1e-5)
    parts["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    assert not teacher.training


def test_yolo_distillation_is_lower_when_the_student_is_the_teacher():
    task, teacher = _detect_task(), _yolo(1).eval()
    batch = _detect_batch()
    same = _yolo(1)  # the teacher's weights, in eval mode as the teacher (batch norm)
    same.load_state_dict(teacher.state_dict())
    other = _yolo(7).train()
    kd_same = float(
        DISTILL.of(task).loss(task, same.eval(), teacher, batch, temperature=4.0)["kd"].detach()
    )
    kd_other = float(
        DISTILL.of(task).loss(task, other, teacher, batch, temperature=4.0)["kd"].detach()
    )
    assert kd_same == pytest.approx(0.0, abs=1e-5)
    assert kd_other > kd_same + 0.01


def test_classify_distillation_blends_cross_entropy_and_kd():
    task = ClassifyTask(["a", "b", "c"], (0.5,) * 3, (0.25,) * 3, img_size=16)
    torch.manual_seed(0)
    student = create_model("cnn", num_classes=3, img_size=16).train()
    teacher = create_model("cnn", num_classes=3, img_size=16)
    batch = Batch(
        torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8), torch.tensor([0, 1, 2, 0])
    )
    parts = DistillObjective(teacher, task, 0.25, 3.0).loss(task, student, student, batch)
    assert float(parts["loss"].detach()) == pytest.approx(
        0.75 * float(parts["task_loss"]) + 0.25 * float(parts["kd"]), rel=1e-5
    )
    parts["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_the_teacher_checks_of_each_task():
    det = _detect_task()
    with pytest.raises(RecogError, match="trained at 128 px and the student trains at 64 px"):
        DISTILL.of(det).check_teacher(det, _yolo(0), Teacher(_yolo(1), 128, "T"), img_size=64)
    cnn = create_model("cnn", num_classes=2, img_size=16)
    with pytest.raises(RecogError, match="T: the teacher is not a recog YOLO"):
        DISTILL.of(det).check_teacher(det, _yolo(0), Teacher(cnn, 64, "T"), img_size=64)
    vit = create_model("vit_tiny", num_classes=2, img_size=32)
    cls = ClassifyTask(["a", "b"], (0.5,) * 3, (0.25,) * 3, img_size=64)
    with pytest.raises(RecogError, match="T: the teacher .trained at 32 px. cannot answer at"):
        DISTILL.of(cls).check_teacher(cls, cnn, Teacher(vit, 32, "T"), img_size=64)
    seg = SegmentTask.__new__(SegmentTask)
    with pytest.raises(RecogError, match="segment models have no distillation"):
        DISTILL.of(seg)
    with pytest.raises(RecogError, match="weight"):
        DistillObjective(cnn, det, 0.0, 4.0)
