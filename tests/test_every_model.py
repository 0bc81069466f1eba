"""Every registered model through the Task seam, as a run builds it: two training steps, a
prediction, and a run directory that `recog.load` rebuilds to the same predictions.

One parametrized test over `list_models()` (timm's habit) instead of a copy per task.
Each also shows that an attack's gradient reaches its input (recog.robust).
Models are built from scratch at their smallest input (at least 32 px) for 2 CPU cores;
the torchvision detectors resize internally (SSD to 300/320 px) and Faster R-CNN's
heads sample hundreds of RoIs a step, so those stay the slow cases.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import recog
from recog import io as rio
from recog import recipe
from recog.api import CONFIG_NAME, LABELS_NAME, build_model, build_task
from recog.config import TrainConfig, TrainRequest
from recog.engine.optim import build_optimizer
from recog.engine.trainer import WEIGHTS_NAME
from recog.models.factory import get_spec, list_models
from recog.resolve import resolve_config
from recog.robust.objective import gradient_problem, loss_objective, vanish_objective
from recog.tasks import (
    ClassifyTask,
    DetectTask,
    InstanceSegmentTask,
    SegmentTask,
    Task,
    task_class,
)
from recog.types import Prediction, Sample, Target, TaskName

CLASS_NAMES = ["a", "b", "c"]
#: built-in data each task's config is resolved against (surveyed, never loaded here)
DATA = {"classify": "digits", "detect": "shapes", "segment": "shapes"}


def _size(name: str) -> int:
    """The model's minimum input, at least 32 px, rounded up to a multiple of 32."""
    return -(-max(32, get_spec(name).min_img_size) // 32) * 32


def _run_config(name: str, run_dir: Path) -> TrainConfig:
    """The fully resolved config a run of `name` would write (one epoch, on the CPU)."""
    spec = get_spec(name)
    cfg = TrainRequest(
        data=DATA[spec.task], model=name, img_size=_size(name), epochs=1, device="cpu"
    )
    res, facts, _ = resolve_config(cfg, device_type="cpu")
    res = recipe.resolve_budget(res, facts, probe=None)
    return dataclasses.replace(res.config, out=str(run_dir), name=run_dir.name)


def _classify_samples(size: int) -> list[Sample]:
    return [
        Sample(
            torch.randint(0, 256, (3, size, size), dtype=torch.uint8),
            Target(labels=torch.tensor(k)),
            orig_size=(size, size),
        )
        for k in (0, 2)
    ]


def _boxes(size: int) -> Target:
    """One object of class 2: boxes (1, 4) float xyxy, pixels."""
    box = torch.tensor([[0.15, 0.2, 0.6, 0.8]]) * size
    return Target(boxes=box, labels=torch.tensor([2]))


def _detect_samples(size: int) -> list[Sample]:
    empty = Target(boxes=torch.zeros((0, 4)), labels=torch.zeros((0,), dtype=torch.int64))
    return [
        Sample(
            torch.randint(0, 256, (3, size, size), dtype=torch.uint8),
            target,
            orig_size=(size, size),
            meta={"scale": 1.0, "truth": target},
        )
        for target in (_boxes(size), empty)  # an image with an object and a negative one
    ]


def _instance_samples(size: int) -> list[Sample]:
    samples = _detect_samples(size)
    for s in samples:
        masks = torch.zeros((len(s.target.boxes), size, size), dtype=torch.bool)
        for m, (x0, y0, x1, y1) in zip(masks, s.target.boxes.int().tolist(), strict=True):
            m[y0:y1, x0:x1] = True
        s.target.masks = masks
    return samples


def _semantic_samples(size: int) -> list[Sample]:
    # sides that are no multiple of any stride, and unequal (collate pads to the larger)
    sides = [(size + 8, size + 3), (size + 5, size + 1)]
    return [
        Sample(
            torch.randint(0, 256, (3, h, w), dtype=torch.uint8),
            Target(mask=torch.randint(0, len(CLASS_NAMES), (h, w))),
            orig_size=(h, w),
        )
        for h, w in sides
    ]


SAMPLES = {
    ClassifyTask: _classify_samples,
    DetectTask: _detect_samples,
    InstanceSegmentTask: _instance_samples,
    SegmentTask: _semantic_samples,
}


def _check_shapes(task: Task, samples: list[Sample], preds: list[Prediction]) -> None:
    assert len(preds) == len(samples)
    for s, p in zip(samples, preds, strict=True):
        assert p.scores is None or torch.isfinite(p.scores).all(), p.scores
        if isinstance(task, ClassifyTask):
            assert p.scores.shape == (len(CLASS_NAMES),)
        elif isinstance(task, SegmentTask):
            assert p.mask.shape == s.image.shape[-2:]
        else:
            n = len(p.scores)
            assert p.boxes.shape == (n, 4) and p.labels.shape == (n,)
            assert n == 0 or 0 <= int(p.labels.min()) <= int(p.labels.max()) < len(CLASS_NAMES)
            if isinstance(task, InstanceSegmentTask):
                assert p.masks.shape == (n, *s.orig_size) and p.masks.dtype == torch.bool


def _assert_same(a: list[Prediction], b: list[Prediction]) -> None:
    for pa, pb in zip(a, b, strict=True):
        for f in dataclasses.fields(Prediction):
            va, vb = getattr(pa, f.name), getattr(pb, f.name)
            assert (va is None) == (vb is None), f.name
            if va is not None:
                torch.testing.assert_close(vb, va, msg=f"{f.name} differs after recog.load")


#: the four slowest here (12-17 s each on 2 cores): in `make test-all`, to keep `make test` < 15 min
SLOW_MODELS = {"ssd300", "faster_rcnn", "vgg11", "vgg16"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in list_models()],
)
def test_model_trains_predicts_and_reloads_through_the_task(name, tmp_path):
    torch.manual_seed(0)
    run_dir = tmp_path / name
    cfg = _run_config(name, run_dir)
    model, spec = build_model(cfg, len(CLASS_NAMES))
    task = build_task(cfg, CLASS_NAMES, spec)
    samples = SAMPLES[type(task)](int(cfg.img_size))  # type: ignore[arg-type]
    batch = task.collate(samples)

    # the run's own optimizer: plain SGD on a batch of two blows up ResNet-50's first layer
    # through the batch norms of its 1x1 last stage, and eval then predicts NaN
    optimizer = build_optimizer(cfg, model)
    params = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        losses = task.loss(model, batch)
        assert all(torch.isfinite(v).all() for v in losses.values()), losses
        losses["loss"].backward()
        optimizer.step()
    assert any(not torch.equal(p, b) for p, b in zip(params, before, strict=True))

    model.eval()
    preds = task.predict(model, batch.images, batch.meta)
    _check_shapes(task, samples, preds)

    # an attack's gradient reaches the input: the task's own loss with the ground truth
    # (recog.robust), and for detectors the "vanish" score too; the model's modes are kept
    images01 = batch.images.float() / 255
    assert gradient_problem(loss_objective(task, model, batch), images01) is None
    if isinstance(task, DetectTask):  # its loss against an empty truth: every candidate
        assert gradient_problem(vanish_objective(task, model), images01) is None
    assert not model.training

    # the run directory as `recog.api.train` and the trainer write it
    run_dir.mkdir()
    cfg.save(run_dir / CONFIG_NAME)
    rio.atomic_write_text(run_dir / LABELS_NAME, json.dumps(CLASS_NAMES))
    rio.save_weights(
        run_dir / WEIGHTS_NAME, model.state_dict(), {"model": name, "task": str(cfg.task)}
    )
    rec = recog.load(run_dir, device="cpu")
    assert type(rec.task) is type(task) and rec.spec == spec
    _assert_same(preds, rec.task.predict(rec.model, batch.images, batch.meta))


def test_the_task_class_comes_from_the_models_spec():
    """Mask R-CNN runs are instance segmentation under the task name "segment"."""
    assert task_class(get_spec("mask_rcnn")) is InstanceSegmentTask
    assert get_spec("mask_rcnn").task == TaskName.SEGMENT
    assert task_class(get_spec("unet")) is task_class("segment") is SegmentTask
    assert task_class(get_spec("yolo_n")) is task_class(TaskName.DETECT) is DetectTask
    assert task_class(get_spec("cnn")) is ClassifyTask
    _, _, resolved = resolve_config(TrainRequest(data="shapes", model="mask_rcnn", img_size=64))
    assert resolved is InstanceSegmentTask
