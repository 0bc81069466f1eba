"""`Explainer`: maps for a model's predictions, and the faithfulness table of the methods on a dataset.

It asks the task what each prediction's targets are (a class, a box, a
region) and what their score is, through the explain facet
(`recog.explain.facet.EXPLAIN`), so one loop serves every task.  Images arrive as
the model sees them: uint8 (3, H, W) at the input size (`Task.prepare`, or
a dataset's samples), and every map is at that size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from recog.console import progress_bar
from recog.errors import RecogError
from recog.explain import faithfulness as faith
from recog.explain.facet import EXPLAIN
from recog.explain.methods import CAM_METHODS, METHODS, MapInputs, normalized, saliency
from recog.explain.target import TargetModel, cam_layer, score_fn
from recog.tasks.base import Task
from recog.types import ExplainTarget


@dataclass
class Explanation:
    """One map: which image, which target, which method, and its own faithfulness scores."""

    image: str
    target: ExplainTarget
    method: str
    saliency: np.ndarray
    scores: dict[str, float] = field(default_factory=dict)


#: a map "changes" under model randomization below this mean |Spearman rho|
#: (Adebayo et al. 2018 read rank correlations well under 0.5 after full randomization as a
#: pass; a map that ignores the model stays at 1)
RANDOMIZATION_RHO_MAX = 0.5


def checks(row: dict[str, float], random: dict[str, float]) -> dict[str, bool]:
    """The three sanity checks of one method's row against the random map's row."""
    rho = row.get("randomization_spearman", float("nan"))
    return {
        "deletion_beats_random": row["deletion_auc"] < random["deletion_auc"],
        "insertion_beats_random": row["insertion_auc"] > random["insertion_auc"],
        "changes_with_weights": bool(rho == rho and rho < RANDOMIZATION_RHO_MAX),
    }


class Explainer:
    """Explanations of one model through its task."""

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        *,
        head: tuple[str, ...] = (),
        device: torch.device | str = "cpu",
        seed: int = 0,
        extra_methods: dict[str, Callable[[MapInputs], np.ndarray]] | None = None,
    ) -> None:
        """`extra_methods`: more map functions by name, beside `METHODS` (a user's own
        method, or a deliberately unfaithful one that the checks must catch)."""
        self.task, self.model, self.head = task, model.eval(), head
        self.extra = dict(extra_methods or {})
        self.device, self.seed = torch.device(device), seed
        self._layer_name: str | None = None
        self._reshape = None

    # ---------------------------------------------------------------- pieces
    def targets(self, image: torch.Tensor, *, label: int | None = None) -> list[ExplainTarget]:
        """The targets of the model's prediction on one uint8 (3, H, W) input-size image."""
        pred = self.task.predict(self.model, image[None].to(self.device))[0]
        return EXPLAIN.of(self.task).targets(self.task, pred, label=label)

    def _inputs(
        self, model: nn.Module, image: torch.Tensor, target: ExplainTarget, method: str, seed: int
    ) -> MapInputs:
        evidence = TargetModel(self.task, model, target, gradient=True)
        x = MapInputs(
            image=image, evidence=evidence, score=score_fn(self.task, model, target), seed=seed
        )
        if method in CAM_METHODS or method in self.extra:
            if self._layer_name is None:
                _, self._reshape, self._layer_name = cam_layer(evidence, image, self.head)
            x.layer = dict(model.named_modules())[self._layer_name]
            x.reshape = self._reshape
        return x

    def saliency(
        self,
        image01: torch.Tensor,
        target: ExplainTarget,
        method: str,
        *,
        model: nn.Module | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        if method not in METHODS and method not in self.extra:
            raise RecogError(f"--method {method}: not one of {', '.join(METHODS)}")
        inputs = self._inputs(model or self.model, image01, target, method, seed)
        if method in self.extra:
            return normalized(self.extra[method](inputs))
        return saliency(method, inputs)

    @staticmethod
    def as_float(image: torch.Tensor, device: torch.device) -> torch.Tensor:
        """uint8 (3, H, W) -> (1, 3, H, W) float in [0, 1] on `device`."""
        return image[None].to(device).float().div(255.0)

    # ------------------------------------------------------------ per image
    def explain(
        self,
        image: torch.Tensor,
        name: str,
        *,
        methods: Sequence[str],
        label: int | None = None,
        steps: int = 20,
    ) -> list[Explanation]:
        """Every target's map by every method for one uint8 input-size image, each with its
        deletion and insertion AUC (and the random map's, for comparison)."""
        x = self.as_float(image, self.device)
        out = []
        for k, target in enumerate(self.targets(image, label=label)):
            score = score_fn(self.task, self.model, target)
            rand = self.saliency(x, target, "random", seed=self.seed + k)
            baseline = faith.deletion_insertion(score, x, rand, steps=steps)
            for method in methods:
                m = self.saliency(x, target, method, seed=self.seed + k)
                scores = faith.deletion_insertion(score, x, m, steps=steps)
                scores |= {f"random_{key}": value for key, value in baseline.items()}
                out.append(Explanation(name, target, method, m, scores))
        return out

    # ------------------------------------------------------------ a dataset
    def score(
        self,
        images: Sequence[torch.Tensor],
        *,
        methods: Sequence[str],
        steps: int = 20,
        targets_per_image: int = 5,
        randomization_images: int = 4,
        levels: int = 4,
    ) -> tuple[dict[str, dict[str, float]], list[Explanation]]:
        """The faithfulness table {method: deletion_auc, insertion_auc, randomization_spearman,
        maps}, best first (by insertion minus deletion), with `random` among the methods; and
        the first image's maps (for a report)."""
        methods = list(dict.fromkeys([*methods, "random"]))
        sums: dict[str, dict[str, list[float]]] = {
            m: {"deletion_auc": [], "insertion_auc": [], "randomization_spearman": []}
            for m in methods
        }
        examples: list[Explanation] = []
        stages = faith.randomization_levels(self.model, levels)
        randomized = [faith.reinitialized(self.model, names, seed=self.seed) for names in stages]
        with progress_bar(unit="img") as bars:
            bar = bars.add_task("explain --score", total=len(images), info="")
            for i, image in enumerate(images):
                self._score_image(
                    i, image, methods, sums, examples, randomized, steps=steps,
                    targets_per_image=targets_per_image,
                    randomization_images=randomization_images,
                )  # fmt: skip
                bars.advance(bar)
        table = {
            m: {key: float(np.mean(v)) if v else float("nan") for key, v in values.items()}
            | {"maps": len(values["deletion_auc"])}
            for m, values in sums.items()
        }
        if not any(row["maps"] for row in table.values()):
            raise RecogError("no prediction to explain on these images (the model found nothing)")
        for row in table.values():
            row.update(checks(row, table["random"]))
        ranked = sorted(
            table.items(), key=lambda kv: kv[1]["deletion_auc"] - kv[1]["insertion_auc"]
        )
        return dict(ranked), examples

    def _score_image(
        self,
        i: int,
        image: torch.Tensor,
        methods: Sequence[str],
        sums: dict[str, dict[str, list[float]]],
        examples: list[Explanation],
        randomized: Sequence[nn.Module],
        *,
        steps: int,
        targets_per_image: int,
        randomization_images: int,
    ) -> None:
        x = self.as_float(image, self.device)
        for k, target in enumerate(self.targets(image)[:targets_per_image]):
            score = score_fn(self.task, self.model, target)
            seed = self.seed + 1000 * i + k
            for method in methods:
                m = self.saliency(x, target, method, seed=seed)
                got = faith.deletion_insertion(score, x, m, steps=steps)
                for key, value in got.items():
                    sums[method][key].append(value)
                if i < randomization_images:
                    rhos = [
                        faith.rank_correlation(
                            m, self.saliency(x, target, method, model=r, seed=seed)
                        )
                        for r in randomized
                    ]
                    sums[method]["randomization_spearman"].append(float(np.mean(rhos)))
                if i == 0:
                    examples.append(Explanation(f"image {i}", target, method, m, got))
