"""What a loaded run applies when it predicts: its temperature, then its reject rule.

`Confidence.load(run_dir, task)` reads `calibration.json` and `ood_rule.json`
(with `ood_bank.safetensors`) when the run has them.  `predict` runs the
task's own `predict` on the temperature-scaled model; with a rule (and
`reject`), the raw logits and penultimate features of that same forward pass
(for an `imagenet_*` score, the untouched ImageNet network's features of the
same prepared images) give each image its OOD score, and an image scoring below the threshold is
marked `unknown` (its `labels` and `scores` stay, for whoever wants the
nearest class).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

from recog.confidence.calibration import CALIBRATION_NAME, Calibration, TemperatureScaled
from recog.confidence.facet import CONFIDENCE
from recog.confidence.features import FeatureTap, head_module
from recog.confidence.ood import BANK_NAME, RULE_NAME, OODRule
from recog.errors import RecogError
from recog.types import Prediction

if TYPE_CHECKING:
    from recog.models.registry import ModelSpec
    from recog.tasks.base import Task

OOD_REPORT_NAME = "ood.json"
#: what `recog calibrate` / `recog ood` leave in a run: stale once the model is trained again
CONFIDENCE_FILES = (CALIBRATION_NAME, RULE_NAME, BANK_NAME, OOD_REPORT_NAME)


class _OutputTap:
    """Keeps the raw output of `model` from the last forward pass."""

    def __init__(self) -> None:
        self.output: Tensor | None = None

    @contextlib.contextmanager
    def attached(self, model: nn.Module) -> Iterator[_OutputTap]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            self.output = output.detach().float()

        handle = model.register_forward_hook(hook)
        try:
            yield self
        finally:
            handle.remove()


@dataclass
class Confidence:
    """A run's calibration and reject rule (either may be absent)."""

    calibration: Calibration | None = None
    rule: OODRule | None = None

    @classmethod
    def load(cls, run_dir: Path, task: Task) -> Confidence | None:
        calibration, rule = Calibration.load(run_dir), OODRule.load(run_dir)
        if calibration is None and rule is None:
            return None
        if not CONFIDENCE.has(task):
            name = CALIBRATION_NAME if calibration is not None else RULE_NAME
            raise RecogError(
                f"{Path(run_dir) / name}: {task.name} runs cannot apply it (remove it)"
            )
        return cls(calibration, rule)

    @property
    def temperature(self) -> float:
        return self.calibration.temperature if self.calibration is not None else 1.0

    def scaled(self, model: nn.Module) -> nn.Module:
        """`model` with the run's temperature applied to its logits (itself when there is none)."""
        return model if self.calibration is None else TemperatureScaled(model, self.temperature)

    def predict(
        self,
        task: Task,
        model: nn.Module,
        spec: ModelSpec,
        images: Tensor,
        meta: Sequence[dict[str, Any]] | None = None,
        *,
        reject: bool = True,
    ) -> list[Prediction]:
        """The task's predictions with the temperature applied; with the rule, each carries
        `ood_score` and `unknown` (score below the threshold)."""
        scaled = self.scaled(model)
        rule = self.rule
        if rule is None or not reject:
            return task.predict(scaled, images, meta)
        outputs, features = _OutputTap(), None
        with contextlib.ExitStack() as stack:
            stack.enter_context(outputs.attached(model))
            if rule.needs_run_features:
                features = stack.enter_context(FeatureTap(head_module(model, spec)).attached())
            predictions = task.predict(scaled, images, meta)
        if outputs.output is None:
            raise RecogError("the model was not run: no logits to score")
        feats = None if features is None or features.features is None else features.features.cpu()
        if rule.needs_imagenet_features:
            # the same prepared images through the untouched ImageNet network
            feats = rule.imagenet()(images)
        values = rule.scores(outputs.output.cpu(), feats)
        return [
            dataclasses.replace(p, ood_score=float(s), unknown=bool(s < rule.threshold))
            for p, s in zip(predictions, values.tolist(), strict=True)
        ]
