"""recog's own Square (no gradients) on detectors and segmenters: it stays in the ball, is
repeatable, raises the task's loss, and catches a model whose gradients mislead PGD
(the black-box check of `recog.robust.output`).  The tiny models: conftest.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from recog.errors import RecogError
from recog.robust import output
from recog.robust.measure import AttackPlan, Robustness, measure
from recog.robust.objective import loss_objective
from recog.robust.square import HALVINGS, share, side, square

EPS = 32 / 255
#: the masked models' eps: Square's 100 queries lower this weak unet's mIoU by about 0.02 at
#: 64/255, where the gradient-reversed PGD leaves it above clean (0.158 -> 0.141; 0.161)
MASKED_EPS = 64 / 255


def test_square_stays_in_the_ball_and_is_repeatable():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Conv2d(4, 1, 3))
    target = torch.rand(2, 1, 12, 12)
    calls = []

    def objective(x: torch.Tensor) -> torch.Tensor:
        calls.append(torch.is_grad_enabled())
        return (net(x) - target).square().mean()

    clean = torch.rand(2, 3, 16, 16)
    clean[0, :, :4] = 0.0  # pixels at the edges of [0, 1]: the clipping is exercised
    clean[1, :, -4:] = 1.0
    adv = square(objective, clean, eps=0.05, queries=60, seed=3)
    assert len(calls) <= 61 and not any(calls), "objective calls only, without gradients"
    assert float((adv - clean).abs().max()) <= 0.05 + 1e-6
    assert 0 <= float(adv.min()) and float(adv.max()) <= 1
    with torch.no_grad():
        assert float(objective(adv)) > float(objective(clean))
    assert torch.equal(adv, square(objective, clean, eps=0.05, queries=60, seed=3))
    assert not torch.equal(adv, square(objective, clean, eps=0.05, queries=60, seed=4))
    # the paper's schedule: p halves after 10, 50, ... of 10,000 queries, rescaled
    assert [share(0.08, q, 10_000) for q in (10, 11, 8001)] == [0.08, 0.04, 0.08 / 512]
    assert share(0.08, 1, 100) == 0.02 and len(HALVINGS) == 9
    assert side(0.05, 64, 64) == 14 and side(1e-9, 64, 64) == 1 and side(4.0, 8, 32) == 8


def _attack(run, model: nn.Module, attack: str, eps: float, steps: int) -> Robustness:
    """`attack` at `eps` on 4 validation images of `run`'s data, `model` in its place."""
    val = run.task.data.splits(run.config).val
    plan = AttackPlan(attack=attack, eps=(eps,), steps=steps, images=4)
    return measure(run.task, model, val, plan, batch_size=8)


def _first_loss(task, model, result: Robustness, dataset) -> tuple[float, float]:
    """The task's loss on the first attacked image, clean and as Square left it."""
    batch = task.collate([dataset[0]])
    objective = loss_objective(task, model, batch)
    adv = result.examples[0]["adv"]
    with torch.no_grad():
        return float(objective(batch.images.float() / 255)), float(objective(adv))


def _raises_the_loss_and_never_beats_clean(run, metric: str) -> None:
    val = run.task.data.splits(run.config).val
    result = _attack(run, run.model, "square", EPS, 100)
    assert result.backend == "recog" and result.metric == metric and result.clean[metric] > 0
    assert result.robust[0][metric] <= result.clean[metric] + 1e-9, result
    clean_loss, attacked_loss = _first_loss(run.task, run.model, result, val)
    assert attacked_loss > clean_loss, (clean_loss, attacked_loss)
    adv, clean = result.examples[0]["adv"], result.examples[0]["clean"].float() / 255
    assert float((adv - clean).abs().max()) <= EPS + 1e-6
    # an honest model: PGD at least as strong as Square, so the black-box check is silent
    pgd = _attack(run, run.model, "pgd", EPS, 3)
    assert output.compare_attacks([pgd.to_dict(), result.to_dict()]) == [], (pgd, result)


def test_square_raises_the_segmentation_loss_and_never_beats_clean(unet):
    _raises_the_loss_and_never_beats_clean(unet, "miou")


# slow: its YOLO run takes 27 s to train; the segmentation case keeps Square's dense path
@pytest.mark.slow
def test_square_raises_the_detection_loss_and_never_beats_clean(yolo):
    _raises_the_loss_and_never_beats_clean(yolo, "map")


class _Detached(nn.Module):
    """A detached copy of the input: the same answers, no gradient at all."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.detach())


class _Reversed(_Detached):
    """The same answers (2a - a is exact), minus the true gradient: PGD walks downhill."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return 2 * out.detach() - out


def test_square_lowers_miou_where_no_gradient_reaches_the_input(unet):
    model = _Detached(unet.model).eval()
    pgd = _attack(unet, model, "pgd", MASKED_EPS, 3)
    assert not pgd.checks["gradient_reaches_input"] and pgd.robust[0]["miou"] is None
    box = _attack(unet, model, "square", MASKED_EPS, 100)
    assert box.robust[0]["miou"] < box.clean["miou"] - 0.005, box


def test_square_beating_a_misled_pgd_is_flagged_in_the_record_and_report(unet, tmp_path):
    model = _Reversed(unet.model).eval()
    pgd = _attack(unet, model, "pgd", MASKED_EPS, 3)
    assert pgd.checks["gradient_reaches_input"], "the gradient is there, only wrong"
    output.write(tmp_path, pgd, [])
    box = _attack(unet, model, "square", MASKED_EPS, 100)
    assert box.robust[0]["miou"] < pgd.robust[0]["miou"] - 0.01, (box.robust, pgd.robust)
    record = output.write(tmp_path, box, [])
    flags = [f for f in record["checks"]["flags"] if "square (no gradients) beats pgd" in f]
    assert flags and not record["checks"]["trustworthy"], record["checks"]
    assert "square (no gradients) beats pgd" in output.report_section(tmp_path, record)


def test_square_on_a_dense_task_takes_linf_only(unet):
    with pytest.raises(RecogError, match="square on detectors/segmenters takes --norm linf"):
        AttackPlan(attack="square", norm="l2", eps=(0.5,)).check(unet.task)
    with pytest.raises(RecogError, match="attacks classifiers only"):
        AttackPlan(attack="autoattack").check(unet.task)
    assert AttackPlan(attack="square").backend(unet.task) == "recog"
