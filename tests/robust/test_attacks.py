"""recog's own PGD against torchattacks', the masking checks, and the curve on a classifier."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from recog.robust import attacks
from recog.robust.library import PixelClassifier, build
from recog.robust.measure import AttackPlan, checks, measure
from recog.robust.objective import gradient_problem, loss_mode, loss_objective
from recog.types import Batch


def _val(digits, n: int = 96) -> Batch:
    val = digits.task.data.splits(digits.config).val
    return digits.task.collate([val[i] for i in range(0, len(val), max(1, len(val) // n))][:n])


def _accuracy(digits, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        logits = PixelClassifier(digits.task, digits.model.eval())(images)
    return float((logits.argmax(1) == labels).float().mean())


@pytest.mark.parametrize("norm,eps", [("linf", 0.03), ("l2", 1.5)])
def test_recog_pgd_equals_torchattacks_pgd(digits, norm, eps):
    """Same model, images and seed: the same adversarial images, so the same accuracy."""
    batch = _val(digits)
    clean = batch.images.float() / 255
    model = digits.model.eval()
    alpha = attacks.default_alpha(eps, 10)
    torch.manual_seed(7)
    ours = attacks.pgd(loss_objective(digits.task, model, batch), clean, eps=eps, alpha=alpha,
                       steps=10, norm=norm)  # fmt: skip
    torch.manual_seed(7)
    theirs = build("pgd", PixelClassifier(digits.task, model), eps=eps, norm=norm, steps=10,
                   alpha=alpha, seed=7, targeted=False)(clean, batch.targets)  # fmt: skip
    a, b = _accuracy(digits, ours, batch.targets), _accuracy(digits, theirs, batch.targets)
    clean_acc = _accuracy(digits, clean, batch.targets)
    assert b < clean_acc - 0.2, "the eps must be large enough for the comparison to mean something"
    assert abs(a - b) <= 0.005, (a, b)
    # the same steps in the same order: the images differ only by float rounding
    assert float((ours - theirs).abs().mean()) < 1e-3
    size = (ours - clean).flatten(1)
    bound = size.abs().amax(1) if norm == "linf" else size.norm(dim=1)
    assert float(bound.max()) <= eps + 1e-5 and 0 <= float(ours.min()) and float(ours.max()) <= 1


def test_the_curve_falls_with_eps_and_never_beats_clean(digits, tmp_path):
    record = digits.attack(eps=[0.01, 0.05, 0.15], steps=10, images=96, save_dir=tmp_path)
    top1 = [row["top1"] for row in record["robust"]]
    assert all(v <= record["clean"]["top1"] + 1e-9 for v in top1)
    assert top1 == sorted(top1, reverse=True) and top1[-1] < record["clean"]["top1"] - 0.3
    assert record["backend"] == "torchattacks" and record["checks"]["trustworthy"]
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["clean"] == record["clean"] and [r["eps"] for r in saved["robust"]] == [
        0.01,
        0.05,
        0.15,
    ]
    assert (tmp_path / "robustness.png").stat().st_size > 5000
    assert (tmp_path / "examples-pgd-linf.png").stat().st_size > 5000
    report = (digits.run_dir / "report.html").read_text()
    assert "section:robustness" in report and "pgd (linf, 10 steps" in report


class _Rounded(nn.Module):
    """A classifier whose first step quantizes its input: the gradient is zero."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 4) / 4)


class _Detached(_Rounded):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.detach())


@pytest.mark.parametrize("wrapper", [_Rounded, _Detached])
def test_a_model_with_a_non_differentiable_input_step_is_reported(digits, wrapper):
    val = digits.task.data.splits(digits.config).val
    model = wrapper(digits.model).eval()
    result = measure(digits.task, model, val, AttackPlan(eps=(0.03, 0.1), images=48), batch_size=48)
    assert result.checks["gradient_reaches_input"] is False
    assert result.checks["trustworthy"] is False
    assert any("no usable gradient" in f for f in result.checks["flags"])


def test_the_checks_flag_a_curve_that_rises_or_does_not_fall():
    clean = {"top1": 0.9}
    rising = [{"eps": 0.01, "top1": 0.5}, {"eps": 0.02, "top1": 0.7}]
    assert checks(clean, rising, "top1", None)["falls_with_eps"] is False
    flat = [{"eps": 0.01, "top1": 0.9}, {"eps": 0.02, "top1": 0.9}]
    assert not checks(clean, flat, "top1", None)["trustworthy"]
    good = [{"eps": 0.01, "top1": 0.6}, {"eps": 0.02, "top1": 0.2}]
    assert checks(clean, good, "top1", None) == {
        "gradient_reaches_input": True, "falls_with_eps": True, "trustworthy": True, "flags": [],
    }  # fmt: skip


def test_square_beating_pgd_is_flagged():
    from recog.robust.output import compare_attacks

    pgd = {"attack": "pgd", "norm": "linf", "metric": "top1", "robust": [{"eps": 0.1, "top1": 0.6}]}
    square = {
        "attack": "square",
        "norm": "linf",
        "metric": "top1",
        "robust": [{"eps": 0.1, "top1": 0.3}],
    }
    flags = compare_attacks([pgd, square])
    assert len(flags) == 1 and "gradient masking" in flags[0]
    square["robust"][0]["top1"] = 0.62
    assert compare_attacks([pgd, square]) == []


def test_loss_mode_keeps_batch_norm_in_eval_and_restores_every_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).eval()
    with loss_mode(model):
        assert model.training and not model[1].training and not model[2].training
    assert not any(m.training for m in model.modules())
    x = torch.rand(2, 3, 8, 8)
    objective = lambda images: model(images).sum()  # noqa: E731
    assert gradient_problem(objective, x) is None


def test_plans_a_model_cannot_take_are_refused_in_one_line(digits):
    from recog.errors import RecogError

    with pytest.raises(RecogError, match="vanish"):
        digits.attack(attack="vanish", images=4)
    with pytest.raises(RecogError, match="takes --norm l2"):
        AttackPlan(attack="cw", norm="linf").check(digits.task)
    with pytest.raises(RecogError, match="no targeted mode"):
        AttackPlan(attack="square", targeted=1).check(digits.task)
