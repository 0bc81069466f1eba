"""Temperature scaling: it finds a known temperature, and it lowers NLL and ECE of an over-confident model."""

from __future__ import annotations

import json

import pytest
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from recog.confidence.calibration import Calibration, TemperatureScaled, ece, fit_temperature
from recog.errors import RecogError


def _calibrated(n: int = 20000, c: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose soft-max is the true label distribution (labels drawn from it)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * 2.0
    labels = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 2.0, 5.0])
def test_the_fitted_temperature_is_the_one_that_made_the_logits(true_t):
    logits, labels = _calibrated()
    fitted = fit_temperature(logits * true_t, labels)  # logits / T0 is calibrated for T0 = true_t
    assert fitted == pytest.approx(true_t, rel=0.05)


def test_scaling_lowers_nll_and_ece_of_an_over_confident_model():
    logits, labels = _calibrated(seed=1)
    cal = Calibration.fit(logits * 5.0, labels, data="synthetic")
    assert cal.temperature == pytest.approx(5.0, rel=0.05)
    assert cal.nll_after < cal.nll_before
    assert cal.ece_after < 0.5 * cal.ece_before and cal.ece_after < 0.02
    # the ECE is torchmetrics' (15 bins, L1), the number metrics.json reports
    reference = multiclass_calibration_error(
        (logits * 5.0).softmax(1), labels, num_classes=10, n_bins=15, norm="l1"
    )
    assert cal.ece_before == pytest.approx(float(reference), abs=1e-6)
    assert ece((logits * 5.0 / cal.temperature).softmax(1), labels) == pytest.approx(cal.ece_after)


def test_scaling_keeps_every_answer_and_the_model_untouched():
    model = torch.nn.Linear(4, 3)
    scaled = TemperatureScaled(model, 2.5)
    x = torch.randn(8, 4)
    torch.testing.assert_close(scaled(x), model(x) / 2.5)
    assert scaled(x).argmax(1).tolist() == model(x).argmax(1).tolist()
    assert set(model.state_dict()) == {"weight", "bias"}
    model.eval()
    assert not TemperatureScaled(model, 2.0).training  # restoring its mode keeps the model in eval


def test_calibration_json_round_trips(tmp_path):
    logits, labels = _calibrated(n=2000)
    cal = Calibration.fit(logits * 3.0, labels, data="d")
    cal.save(tmp_path)
    raw = json.loads((tmp_path / "calibration.json").read_text())
    assert {"temperature", "ece_before", "ece_after", "nll_before", "nll_after"} <= set(raw)
    assert Calibration.load(tmp_path) == cal
    assert Calibration.load(tmp_path / "nowhere") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not readable JSON"),
        ('{"temperature": -1}', "temperature"),
        ('{"temperature": "hot"}', "temperature"),
        ("[1, 2]", "temperature"),
    ],
)
def test_a_bad_calibration_file_is_one_line_naming_it(tmp_path, text, message):
    (tmp_path / "calibration.json").write_text(text)
    with pytest.raises(RecogError, match=message) as info:
        Calibration.load(tmp_path)
    assert "calibration.json" in str(info.value) and "\n" not in str(info.value)
