"""Temperature scaling: one scalar T that divides the logits, fitted on held-out data.

Guo et al. 2017 ("On Calibration of Modern Neural Networks") found that this
single parameter, fitted by minimizing the negative log-likelihood on a
validation set, removes most of a modern network's over-confidence without
changing a single arg-max (so accuracy is untouched).  T is fitted as log T
with L-BFGS (strong Wolfe line search), so it stays positive.

ECE is torchmetrics' `multiclass_calibration_error` (15 equal-width bins,
L1), the same number `metrics.json` reports as `ece`.

`RUN/calibration.json` holds `temperature`, `ece_before`, `ece_after`,
`nll_before`, `nll_after` and what they were measured on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.functional.classification import multiclass_calibration_error

from recog import io as rio
from recog.errors import RecogError
from recog.io import atomic_write_text

CALIBRATION_NAME = "calibration.json"
ECE_BINS = 15
#: the range a fitted temperature is kept in: beyond it the data, not the model, is the problem
T_MIN, T_MAX = 0.01, 100.0


def fit_temperature(logits: Tensor, labels: Tensor, *, max_iter: int = 200) -> float:
    """The T > 0 minimizing mean NLL of softmax(logits / T).  logits (N, C) float, labels (N,) int64."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or logits.shape[0] == 0:
        raise ValueError(
            f"logits (N, C) and labels (N,), got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    z = logits.detach().to("cpu", torch.float64).clone()
    y = labels.detach().to("cpu", torch.int64).clone()
    with torch.inference_mode(False), torch.enable_grad():
        log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), y)
            loss.backward()
            return loss

        opt.step(closure)
        t = float(log_t.detach().exp().item())
    if not math.isfinite(t):
        return 1.0
    return min(max(t, T_MIN), T_MAX)


def ece(probs: Tensor, labels: Tensor, *, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error of (N, C) probabilities (torchmetrics, L1, equal-width bins)."""
    value = multiclass_calibration_error(
        probs.float(),
        labels,
        num_classes=probs.shape[1],
        n_bins=n_bins,
        norm="l1",
        validate_args=False,
    )
    return float(value.double().item())


def nll(logits: Tensor, labels: Tensor) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(F.cross_entropy(logits.double(), labels).item())


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it changed, on `images` images of `data`."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    data: str = ""
    images: int = 0

    @classmethod
    def fit(cls, logits: Tensor, labels: Tensor, *, data: str = "") -> Calibration:
        """Fit T on held-out (N, C) logits and (N,) labels; ECE and NLL before and after."""
        t = fit_temperature(logits, labels)
        before, after = logits.float().softmax(1), (logits.float() / t).softmax(1)
        return cls(
            temperature=t,
            ece_before=ece(before, labels),
            ece_after=ece(after, labels),
            nll_before=nll(logits, labels),
            nll_after=nll(logits / t, labels),
            data=data,
            images=int(labels.shape[0]),
        )

    def save(self, run_dir: Path) -> Path:
        path = Path(run_dir) / CALIBRATION_NAME
        atomic_write_text(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, run_dir: Path) -> Calibration | None:
        """The run's calibration, None when it has none; a bad file is a RecogError naming it."""
        path = Path(run_dir) / CALIBRATION_NAME
        if not path.is_file():
            return None
        raw: Any = rio.read_json(path)
        t = raw.get("temperature") if isinstance(raw, dict) else None
        if not isinstance(t, int | float) or isinstance(t, bool) or not T_MIN <= t <= T_MAX:
            raise RecogError(
                f"{path}: `temperature` must be a number in [{T_MIN}, {T_MAX}], not {t!r} "
                "(run `recog calibrate` again)"
            )
        numbers = {}
        for key in ("ece_before", "ece_after", "nll_before", "nll_after"):
            value = raw.get(key, math.nan)
            numbers[key] = float(value) if isinstance(value, int | float) else math.nan
        return cls(
            temperature=float(t),
            data=str(raw.get("data", "")),
            images=int(raw.get("images", 0)) if isinstance(raw.get("images"), int) else 0,
            **numbers,
        )


class TemperatureScaled(nn.Module):
    """`model`'s logits divided by `temperature`: what a calibrated run predicts with.

    Wrapping (not editing) the model keeps its weights, state dict and hooks
    as they are; the task's own `predict` turns the scaled logits into
    probabilities as before.
    """

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)
        # the wrapper is in the model's mode: an evaluator that restores "the mode it found"
        # must not leave the model training
        self.train(model.training)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) / self.temperature
