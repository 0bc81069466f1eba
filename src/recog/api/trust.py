"""The `Recognizer`'s trust methods: explain, score_explanations, calibrate, fit_ood, ood_report.

Kept apart from the run lifecycle (`recog.api`): the logic is
`recog.explain`'s and `recog.confidence`'s; these pick the data and keep
the results in the run.  `TrustMethods` is a base of `Recognizer` and uses
its `task`, `model`, `spec`, `config`, `device`, `run_dir`, `confidence`
and `_dataset`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recog import io as rio
from recog.api.images import ImageInput, _as_image_list, _to_tensor
from recog.confidence import DEFAULT_SCORE, FALLBACK_SCORE, Calibration, Confidence, OODRule
from recog.confidence.facet import CONFIDENCE
from recog.confidence.ood import IMAGENET_SCORES
from recog.errors import RecogError

if TYPE_CHECKING:
    from recog.confidence.fitting import ModelAt

#: bounds of what finishes in hours (a huge value ran until killed, issue 33), the same for the
#: CLI and the API.  Explanations: every image costs (methods x steps) forward passes, and a
#: curve of 1,000 points is finer than any deletion/insertion AUC needs (RISE, Petsiuk et al.
#: 2018, deletes 224 px a step at 224 px).  Attacks: AutoAttack's Square runs 5,000 queries,
#: PGD rarely past 1,000 steps; 100,000 images is ImageNet's validation set twice.
EXPLAIN_IMAGES, EXPLAIN_STEPS = 10_000, 1_000
ATTACK_IMAGES, ATTACK_STEPS, ATTACK_BATCH = 100_000, 10_000, 65_536


def check_bound(flag: str, value: Any, low: int, high: int) -> None:
    """`value` a whole number in [low, high], else a RecogError naming `flag`."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RecogError(f"{flag} {value}: must be from {low} to {high}")


class TrustMethods:
    """Explanations and confidence for a loaded run (mixed into `Recognizer`)."""

    task: Any
    model: Any
    spec: Any
    config: Any
    device: Any
    run_dir: Path
    confidence: Confidence | None

    def _dataset(self, data: str | None) -> Any:  # pragma: no cover - Recognizer's
        raise NotImplementedError

    def require_torch(self, what: str) -> None:
        """An exported model has no gradients and no layers to read: say so in one line."""
        if getattr(self.model, "exported", False):
            raise RecogError(
                f"{self.run_dir}: {what} need the run's torch weights; this model is exported "
                "(load the run directory with the torch backend)"
            )

    # ------------------------------------------------------------- explain
    def explain(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        methods: Sequence[str] = ("gradcam",),
        target: str | int | None = None,
        save_dir: str | Path | None = None,
        steps: int = 10,
    ) -> list[Any]:
        """Saliency maps (`recog.explain.Explanation`, each with its deletion and insertion
        AUC) of the predictions on `images`, by each method; with `save_dir`, also the overlay
        PNGs, the raw `.npy` maps and their scores there."""
        from recog.explain.run import explain_images

        check_bound("--steps", steps, 2, EXPLAIN_STEPS)
        self.require_torch("explanations")
        items = _as_image_list(images)
        named = [(str(x) if isinstance(x, str | Path) else f"image{i}", _to_tensor(x))
                 for i, x in enumerate(items)]  # fmt: skip
        return explain_images(
            self.task, self.model, named, methods=methods, target=target,
            save_dir=None if save_dir is None else Path(save_dir), head=self.spec.head,
            device=self.device, steps=steps,
        )  # fmt: skip

    def score_explanations(
        self,
        data: str | None = None,
        *,
        methods: Sequence[str] = ("gradcam",),
        images: int = 16,
        steps: int = 20,
        save_dir: str | Path | None = None,
    ) -> dict[str, dict[str, float]]:
        """Faithfulness of each method (and of a random map) on `images` images of `data`
        (default: the run's validation split), best first: `faithfulness.json` in `save_dir`
        (default RUN/explain) and an explanations section in the run's report.html."""
        from recog.explain.run import score_methods

        check_bound("--images", images, 1, EXPLAIN_IMAGES)
        check_bound("--steps", steps, 2, EXPLAIN_STEPS)
        self.require_torch("explanations")

        dataset = self._dataset(data)
        return score_methods(
            self.task, self.model, dataset, methods=methods, images=images, steps=steps,
            save_dir=Path(save_dir) if save_dir is not None else self.run_dir / "explain",
            data_name=str(data or self.config.data), head=self.spec.head, device=self.device,
            report=self.run_dir / "report.html",
        )  # fmt: skip

    # ---------------------------------------- confidence: calibrate, fit_ood, ood_report
    # (the logic is recog.confidence's; these pick the data and keep the results in the run)
    def _model_at(self, imagenet: bool | None = False) -> ModelAt:
        """This run's model as `recog.confidence.fitting` measures with it; `imagenet`: with
        the untouched ImageNet network beside it (True: or the line saying why not; None:
        where its package is installed)."""
        from recog.confidence import imagenet as inet
        from recog.confidence.fitting import ModelAt

        extractor = None
        if imagenet or (imagenet is None and inet.available(self.config.pretrained)):
            extractor = inet.ImageNetFeatures(inet.record_for(self.config.pretrained))
        return ModelAt(
            self.task, self.model, self.spec, self.device, batch_size=self._batch(),
            imagenet=extractor,
        )  # fmt: skip

    def _held_out(self, data: str | None) -> tuple[Any, str]:
        """Labelled held-out images: `data`, or the run's own validation split."""
        from recog.confidence.features import require_class_logits

        require_class_logits(self.task)  # before any data is read
        name = f"{self.config.data} (validation)" if data is None else str(data)
        return self._dataset(data), name

    def _batch(self) -> int:
        return int(self.config.batch_size) * 2

    def calibrate(self, data: str | None = None, *, save: bool = True) -> Calibration:
        """Fit temperature scaling on held-out labelled images (default: the validation split);
        with `save`, `RUN/calibration.json`, used from then on by predict and the server."""
        from recog.confidence import fitting

        self.require_torch("calibration and out-of-distribution rules")
        dataset, name = self._held_out(data)
        calibration = fitting.calibrate(self._model_at(), dataset, data=name)
        if save:
            calibration.save(self.run_dir)
        self.confidence = Confidence(calibration, self.confidence.rule if self.confidence else None)
        return calibration

    def fit_ood(
        self,
        data: str | None = None,
        *,
        score: str | None = None,
        tpr: float = 0.95,
        save: bool = True,
    ) -> OODRule:
        """Fit the "none of these" rule: `score`'s threshold keeping `tpr` of the held-out images
        (default: the validation split); the feature scores compare with the training images.
        `score` None: `DEFAULT_SCORE` (k-NN on untouched ImageNet features) where the ImageNet
        network's package is installed, else `FALLBACK_SCORE` (msp).
        With `save`, `RUN/ood_rule.json` (and `ood_bank.safetensors`)."""
        self.require_torch("out-of-distribution rules")
        from recog.confidence import fitting
        from recog.confidence import imagenet as inet

        if score is None:
            score = DEFAULT_SCORE if inet.available(self.config.pretrained) else FALLBACK_SCORE
        fitting.check_score(score)
        fitting.check_tpr(tpr)
        dataset, name = self._held_out(data)
        rule = fitting.fit_rule(
            self._model_at(imagenet=score in IMAGENET_SCORES),
            dataset,
            lambda: CONFIDENCE.of(self.task).load_reference(self.config),
            score_name=score,
            tpr=tpr,
            data=name,
        )
        if save:
            rule.save(self.run_dir)
        self.confidence = Confidence(self.confidence.calibration if self.confidence else None, rule)
        return rule

    def ood_report(
        self,
        out: str | Sequence[str],
        *,
        inputs: str | Sequence[str] | None = None,
        save_dir: str | Path | None = None,
    ) -> dict[str, dict[str, float]]:
        """AUROC and FPR at 95% TPR of every OOD score, telling `inputs` (image files or folders;
        default: the validation split) from the out-of-distribution images `out`.  Written as
        `ood.json` in `save_dir` (default: the run)."""
        from recog.confidence import fitting
        from recog.confidence.features import require_class_logits
        from recog.confidence.rules import OOD_REPORT_NAME
        from recog.data import find_images

        def files(paths: str | Sequence[str]) -> list[Path]:
            found = find_images([paths] if isinstance(paths, str) else list(paths))
            if not found:
                raise RecogError(f"{paths}: no image files")
            return found

        require_class_logits(self.task)
        outside_files = files(out)
        at = self._model_at(imagenet=None)
        if inputs is None:
            inside = at.outputs(self._dataset(None))
        else:
            inside = at.file_outputs(files(inputs))
        outside = at.file_outputs(outside_files)
        stats = fitting.reference_stats(at, CONFIDENCE.of(self.task).load_reference(self.config))
        table = fitting.ood_table(inside, outside, stats)
        target = Path(save_dir) if save_dir is not None else self.run_dir
        rio.atomic_write_text(target / OOD_REPORT_NAME, json.dumps(table, indent=2) + "\n")
        return table

    # ------------------------------------------------------------- robustness
    def attack(
        self,
        data: str | None = None,
        *,
        attack: str = "pgd",
        eps: Sequence[float] | float | None = None,
        norm: str = "linf",
        steps: int | None = None,
        alpha: float | None = None,
        images: int = 200,
        targeted: str | int | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        save_dir: str | Path | None = None,
    ) -> dict[str, Any]:
        """The clean metric and the metric under `attack` at each `eps` (pixel units of
        [0, 1] images) on `images` images of `data` (default: the validation split):
        `robustness.json`, the curve and example grid in `save_dir` (default
        RUN/robustness), and a robustness section in the run's report.html."""
        from recog.explain.run import class_index
        from recog.robust import DEFAULT_EPS, AttackPlan
        from recog.robust.run import attack_run

        check_bound("--images", images, 1, ATTACK_IMAGES)
        if steps is not None:
            check_bound("--steps", steps, 1, ATTACK_STEPS)
        if batch_size is not None:
            check_bound("--batch-size", batch_size, 1, ATTACK_BATCH)
        self.require_torch("attacks")

        radii = DEFAULT_EPS if eps is None else (eps,) if isinstance(eps, int | float) else eps
        default_steps = {"fgsm": 1, "cw": 50, "square": 1000}.get(attack, 10)
        plan = AttackPlan(
            attack=attack, norm=norm, eps=tuple(float(e) for e in radii),
            steps=int(steps or default_steps), alpha=alpha,
            targeted=class_index(self.task, targeted), images=int(images), seed=int(seed),
        )  # fmt: skip
        plan.check(self.task)  # before any data is read
        return attack_run(
            self.task, self.model, self._dataset(data), plan,
            save_dir=Path(save_dir) if save_dir is not None else self.run_dir / "robustness",
            batch_size=int(batch_size or self._batch()), device=self.device,
            data_name=str(data or f"{self.config.data} (validation)"),
            report=self.run_dir / "report.html",
        )  # fmt: skip
