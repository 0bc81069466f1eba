"""The Python API and what every CLI subcommand calls: `train`, `load`, `Recognizer` (one job: the run lifecycle).

`train` resolves a `TrainConfig` (task, image size and data defaults),
builds data, model and task, runs the engine and writes the run directory.
`load` rebuilds a `Recognizer` from a run directory alone: `config.yaml`,
`labels.json` and `model.safetensors`, with nothing unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recog import io as rio
from recog import recipe
from recog.confidence import CONFIDENCE_FILES, DEFAULT_SCORE, Calibration, Confidence, OODRule
from recog.config import BUDGET_FIELDS, NONE, TrainConfig, require_resolved
from recog.engine.distributed import DistContext, pick_device
from recog.engine.trainer import (
    CHECKPOINT_NAME,
    RESULTS_NAME,
    WEIGHTS_NAME,
    Trainer,
    final_evaluation,
    sample_predictions,
    seed_all,
)
from recog.errors import RecogError
from recog.models.factory import create_model, get_spec
from recog.models.registry import ModelSpec
from recog.resolve import infer_task, resolve_config  # noqa: F401  (the API's names)
from recog.tasks import Task, task_class
from recog.types import Prediction

CONFIG_NAME = "config.yaml"
LABELS_NAME = "labels.json"


# ------------------------------------------------------------------ building
def build_task(cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> Task:
    """The run's task, its class picked from the model's spec (`recog.tasks.task_class`)."""
    return task_class(spec).from_config(cfg, class_names, spec)


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, ModelSpec]:
    spec = get_spec(str(cfg.model))
    model = create_model(
        str(cfg.model), num_classes=num_classes, img_size=cfg.img_size, **cfg.model_args
    )
    return model, spec


#: what a run writes besides config.yaml and labels.json: removed before a run reuses its directory
RUN_OUTPUTS = (
    "plots",
    "val",
    "report.html",
    "metrics.json",
    RESULTS_NAME,
    WEIGHTS_NAME,
    CHECKPOINT_NAME,
    *CONFIDENCE_FILES,
)


def _run_dir(cfg: TrainConfig, data_name: str, *, exist_ok: bool = False) -> Path:
    """The new run's directory: `--out` (a run there is refused unless `exist_ok`), or a new
    numbered `runs/<task>/<name>`.  With `exist_ok` the old run's outputs are removed first,
    so nothing of it is left beside the new model."""
    if cfg.out:
        path = _check_out(Path(cfg.out), exist_ok=exist_ok)
        if (path / CONFIG_NAME).exists():
            _clear_run(path)
        elif exist_ok and path.is_dir():
            rio.remove_stale_temps(path)
        return path
    base = (
        Path("runs")
        / str(cfg.task)
        / (cfg.name or f"{data_name}-{str(cfg.model).replace(':', '_')}")
    )
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _check_out(path: Path, *, exist_ok: bool) -> Path:
    """`path` if a new run may be written there (checked before any data is read)."""
    if path.exists() and not path.is_dir():
        raise RecogError(f"{path}: --out names a file, not a run directory")
    if (path / CONFIG_NAME).exists() and not exist_ok:
        raise RecogError(
            f"{path}: already holds a run (give another --out, --exist-ok to replace it, "
            f"or --resume {path} to continue it)"
        )
    return path


def _clear_run(path: Path) -> None:
    import shutil

    for name in RUN_OUTPUTS:
        entry = path / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
    rio.remove_stale_temps(path)


# --------------------------------------------------------------------- train
def train(
    data: str | None = None,
    model: str | None = None,
    *,
    config: TrainConfig | None = None,
    resume: str | Path | None = None,
    exist_ok: bool = False,
    **overrides: Any,
) -> Recognizer:
    """Train a model and write its run directory; returns the trained `Recognizer`.

    `recog.train("digits", "cnn", epochs=15)` or `recog.train(config=TrainConfig(...))`.
    Whatever is left out is chosen by the recipe (`recog.recipe`) and recorded
    in the run's `config.yaml`.  `resume=RUN_DIR` continues an interrupted
    run from its `last.ckpt` (or starts it over when it was stopped before
    its first checkpoint).  `exist_ok=True` lets `out` name an existing run,
    whose outputs are removed before training starts.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG_NAME).is_file():
            raise RecogError(f"{run_dir}: nothing to resume (no {CONFIG_NAME})")
        cfg = TrainConfig.load(run_dir / CONFIG_NAME)
        if "epochs" in overrides:
            epochs = int(overrides.pop("epochs"))
            cfg = dataclasses.replace(cfg, epochs=epochs, steps=None)
    else:
        cfg = config or TrainConfig()
        if data is not None:
            cfg = dataclasses.replace(cfg, data=str(data))
        if model is not None:
            cfg = dataclasses.replace(cfg, model=model)
    if overrides:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides}, source="train()")
    if resume is None and cfg.out:
        _check_out(Path(cfg.out), exist_ok=exist_ok)
    ctx = DistContext.from_env(cfg.device)
    try:
        return _train(
            cfg, ctx, resume_dir=Path(resume) if resume is not None else None, exist_ok=exist_ok
        )
    finally:
        ctx.close()


def _train(
    cfg: TrainConfig, ctx: DistContext, *, resume_dir: Path | None, exist_ok: bool = False
) -> Recognizer:
    from recog.data import balanced_sampler

    res, facts, task_cls = resolve_config(
        cfg, device_type=ctx.device.type, world_size=ctx.world_size
    )
    cfg = res.config
    seed_all(cfg.seed, deterministic=cfg.deterministic)
    splits = task_cls.load_splits(cfg)
    if ctx.enabled and cfg.balanced:
        raise RecogError(
            "--balanced is not supported with torchrun (DistributedSampler shards the data)"
        )
    run_dir = resume_dir or ctx.broadcast(
        _run_dir(cfg, splits.name, exist_ok=exist_ok) if ctx.is_main else None
    )
    seed_all(cfg.seed, deterministic=cfg.deterministic)
    model, spec = build_model(cfg, len(splits.class_names))
    if cfg.weights != NONE:
        from recog.models.weights import load_pretrained

        load_pretrained(model, spec, str(cfg.weights))
    if cfg.freeze_backbone:
        from recog.models.weights import freeze_backbone

        freeze_backbone(model, spec)
    task = build_task(cfg, splits.class_names, spec)
    open_budget = (cfg.epochs is None and cfg.steps is None) or bool(cfg.time)
    measured = None
    if open_budget:
        from recog.engine.probe import probe

        measured = ctx.broadcast(probe(cfg, task, model, splits.train, splits.val, ctx))
    before = res.config.to_dict()
    res = recipe.resolve_budget(res, facts, probe=measured, world_size=ctx.world_size)
    after = res.config.to_dict()
    if any(after[k] != before[k] for k in after if k not in BUDGET_FIELDS | {"ema"}):
        # the cap changed something the loaders read (the mosaic-off epochs): load again
        splits = task_cls.load_splits(res.config)
    cfg = require_resolved(
        dataclasses.replace(res.config, out=str(run_dir), name=run_dir.name), "train"
    )
    resume = resume_dir is not None and (resume_dir / CHECKPOINT_NAME).is_file()
    if ctx.is_main:
        if resume:
            rio.remove_stale_temps(run_dir)
        elif resume_dir is not None:
            # killed before its first checkpoint: the run starts over, with nothing of before
            _clear_run(run_dir)
        _print_start(recipe.start_block(facts, res, run_dir, device=str(ctx.device)))
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in CONFIDENCE_FILES:  # fitted to the model this run is about to replace
            (run_dir / name).unlink(missing_ok=True)
        cfg.save(run_dir / CONFIG_NAME)
        rio.atomic_write_text(run_dir / LABELS_NAME, json.dumps(splits.class_names, indent=1))
    sampler = None
    if cfg.balanced:
        # the global RNG, re-seeded every epoch by the engine, keeps resume exact
        sampler = balanced_sampler(splits.train_labels)
    trainer = Trainer(
        cfg,
        task,
        model,
        splits.train,
        splits.val,
        ctx,
        run_dir=run_dir,
        weights_metadata={"model": str(cfg.model), "task": str(cfg.task)},
        sampler=sampler,
        resume=resume,
    )
    result = trainer.fit()
    model = trainer.model
    if ctx.is_main:
        acc = final_evaluation(
            task,
            model,
            splits.val,
            DistContext(device=ctx.device),
            batch_size=int(cfg.batch_size) * 2,
        )
        samples = sample_predictions(task, model, splits.val, ctx.device)
        from recog.report.run_outputs import write_outputs

        write_outputs(
            run_dir,
            task=task,
            acc=acc,
            extra_metrics={
                "train_seconds": round(result.train_seconds, 3),
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                "skipped_images": len(splits.skipped),
            },
            samples=samples,
            results_csv=run_dir / RESULTS_NAME,
            config=cfg.to_dict(),
            title=f"recog {cfg.task}: {cfg.model} on {splits.name}",
            summary={
                "task": str(cfg.task),
                "model": cfg.model,
                "data": cfg.data,
                "classes": len(splits.class_names),
                "train images": len(splits.train),
                "val images": len(splits.val),
                "epochs": f"{result.epochs_run}/{cfg.epochs}",
                "best epoch": result.best_epoch,
                "train seconds": round(result.train_seconds, 1),
                "run directory": str(run_dir),
                "recipe": "; ".join(res.notes),
            },
        )
    return Recognizer(
        run_dir=run_dir,
        config=cfg,
        class_names=splits.class_names,
        model=model,
        spec=spec,
        task=task,
        device=ctx.device,
    )


def _print_start(lines: list[str]) -> None:
    from recog.console import console

    out = console()
    for line in lines:
        out.print(line, markup=False)


# ---------------------------------------------------------------------- load
def load(run_dir: str | Path, *, device: str = "auto") -> Recognizer:
    """Rebuild a trained recognizer from its run directory (no training data, no unpickling)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RecogError(f"{run_dir}: no such run directory")
    missing = [n for n in (CONFIG_NAME, LABELS_NAME, WEIGHTS_NAME) if not (run_dir / n).is_file()]
    if missing:
        raise RecogError(
            f"{run_dir}: incomplete run directory, missing {', '.join(missing)} (did training finish?)"
        )
    cfg = TrainConfig.load(run_dir / CONFIG_NAME)
    if cfg.unset():
        raise RecogError(
            f"{run_dir / CONFIG_NAME}: not a resolved run config ({', '.join(cfg.unset())} unset); "
            "it was written by an older recog: train it again"
        )
    try:
        class_names = json.loads((run_dir / LABELS_NAME).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecogError(f"{run_dir / LABELS_NAME}: not a JSON list of class names") from exc
    if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
        raise RecogError(f"{run_dir / LABELS_NAME}: not a JSON list of class names")
    model, spec = build_model(cfg, len(class_names))
    state = rio.load_weights(run_dir / WEIGHTS_NAME)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).split("\n")[1].strip() if "\n" in str(exc) else str(exc)
        raise RecogError(f"{run_dir / WEIGHTS_NAME}: does not match {cfg.model} ({first})") from exc
    task = build_task(cfg, class_names, spec)
    dev = pick_device(device)
    return Recognizer(
        run_dir=run_dir,
        config=cfg,
        class_names=class_names,
        model=model,
        spec=spec,
        task=task,
        device=dev,
        confidence=Confidence.load(run_dir, task),
    )


ImageInput = str | Path | torch.Tensor | np.ndarray | Any


class Recognizer:
    """A trained model with its task and preprocessing: predict, evaluate."""

    def __init__(
        self,
        *,
        run_dir: Path,
        config: TrainConfig,
        class_names: list[str],
        model: nn.Module,
        spec: ModelSpec,
        task: Task,
        device: torch.device,
        confidence: Confidence | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.class_names = class_names
        self.spec = spec
        self.task = task
        self.device = device
        self.model = model.to(device).eval()
        #: the run's temperature and reject rule (`recog calibrate`), None without
        self.confidence = confidence

    @property
    def img_size(self) -> int:
        return int(self.config.img_size)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Recognizer({self.config.task}, {self.config.model}, {len(self.class_names)} classes, {self.run_dir})"

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        batch_size: int = 32,
        reject: bool = True,
    ) -> list[Prediction]:
        """Predictions for image files, folders, globs, or uint8 (3, H, W) tensors / HxWx3 arrays / PIL images.

        A calibrated run's temperature is applied; with its out-of-distribution
        rule, an image below the threshold comes back `unknown` with its
        `ood_score` (`reject=False`: no rule, every image gets a class).
        """
        items = _as_image_list(images)
        out: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            prepared = [self.task.prepare(_to_tensor(x)) for x in items[start : start + batch_size]]
            # a task may keep each image's own size (segmentation): batch equal sizes together
            for group in _same_size_runs(prepared):
                batch = torch.stack([image for image, _ in group]).to(self.device)
                out += self.predict_batch(batch, [meta for _, meta in group], reject=reject)
        return out

    def predict_batch(
        self,
        images: torch.Tensor,
        meta: Sequence[dict[str, Any]] | None = None,
        *,
        reject: bool = True,
    ) -> list[Prediction]:
        """Predictions for prepared uint8 (B, 3, H, W) images on the device (`Task.prepare`'s):
        the task's, with the run's temperature and reject rule (the server's micro-batches)."""
        if self.confidence is None:
            return self.task.predict(self.model, images, meta)
        return self.confidence.predict(
            self.task, self.model, self.spec, images, meta, reject=reject
        )

    def predict_files(
        self, paths: Sequence[str], *, batch_size: int = 32, reject: bool = True
    ) -> tuple[list[Path], list[Prediction]]:
        from recog.data import find_images

        files = find_images(list(paths))
        return files, self.predict(files, batch_size=batch_size, reject=reject)

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

        dataset = self._dataset(data)
        return score_methods(
            self.task, self.model, dataset, methods=methods, images=images, steps=steps,
            save_dir=Path(save_dir) if save_dir is not None else self.run_dir / "explain",
            data_name=str(data or self.config.data), head=self.spec.head, device=self.device,
            report=self.run_dir / "report.html",
        )  # fmt: skip

    def _dataset(self, data: str | None) -> Any:
        """`data` with the run's classes at its input size; None: the run's validation split."""
        if data is None:
            return type(self.task).load_splits(self.config).val
        return type(self.task).load_eval(data, self.config, self.class_names)

    def evaluate(
        self, data: str | None = None, *, out_dir: str | Path | None = None
    ) -> dict[str, Any]:
        """Metrics on `data` (default: the run's own validation split); with `out_dir`, also plots and report."""
        start = time.perf_counter()
        dataset = self._dataset(data)
        name = self.config.data if data is None else data
        ctx = DistContext(device=self.device)
        # a calibrated run is measured as it predicts: with its temperature (no reject rule)
        model = self.model if self.confidence is None else self.confidence.scaled(self.model)
        acc = final_evaluation(
            self.task,
            model,
            dataset,
            ctx,
            batch_size=int(self.config.batch_size) * 2,  # type: ignore[arg-type]
        )
        extra = {"eval_seconds": round(time.perf_counter() - start, 3), "data": str(name)}
        if out_dir is None:
            return {**acc.compute(), **extra}
        from recog.report.run_outputs import write_outputs

        samples = sample_predictions(self.task, model, dataset, self.device)
        return write_outputs(
            Path(out_dir),
            task=self.task,
            acc=acc,
            extra_metrics=extra,
            samples=samples,
            results_csv=None,
            config=self.config.to_dict(),
            title=f"recog val: {self.config.model} on {name}",
            summary={"run": str(self.run_dir), "data": str(name), "images": len(dataset)},
        )

    # ---------------------------------------- confidence: calibrate, fit_ood, ood_report
    # (the logic is recog.confidence's; these pick the data and keep the results in the run)
    def _held_out(self, data: str | None) -> tuple[Any, str]:
        """Labelled held-out images: `data`, or the run's own validation split."""
        from recog.confidence.features import require_class_logits

        require_class_logits(self.task)  # before any data is read
        name = f"{self.config.data} (validation)" if data is None else str(data)
        return self._dataset(data), name

    def _batch(self) -> int:
        return int(self.config.batch_size) * 2  # type: ignore[arg-type]

    def calibrate(self, data: str | None = None, *, save: bool = True) -> Calibration:
        """Fit temperature scaling on held-out labelled images (default: the validation split);
        with `save`, `RUN/calibration.json`, used from then on by predict and the server."""
        from recog.confidence import fitting

        dataset, name = self._held_out(data)
        calibration = fitting.calibrate(
            self.task,
            self.model,
            self.spec,
            dataset,
            self.device,
            data=name,
            batch_size=self._batch(),
        )
        if save:
            calibration.save(self.run_dir)
        self.confidence = Confidence(calibration, self.confidence.rule if self.confidence else None)
        return calibration

    def fit_ood(
        self,
        data: str | None = None,
        *,
        score: str = DEFAULT_SCORE,
        tpr: float = 0.95,
        save: bool = True,
    ) -> OODRule:
        """Fit the "none of these" rule: `score`'s threshold keeping `tpr` of the held-out images
        (default: the validation split); the feature scores compare with the training images.
        With `save`, `RUN/ood_rule.json` (and `ood_bank.safetensors`)."""
        from recog.confidence import fitting

        fitting.check_score(score)
        fitting.check_tpr(tpr)
        dataset, name = self._held_out(data)
        rule = fitting.fit_rule(
            self.task,
            self.model,
            self.spec,
            dataset,
            lambda: type(self.task).load_reference(self.config),
            self.device,
            score_name=score,
            tpr=tpr,
            data=name,
            batch_size=self._batch(),
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
        from recog.confidence.features import collect_dataset, collect_files, require_class_logits
        from recog.confidence.rules import OOD_REPORT_NAME
        from recog.data import find_images

        def files(paths: str | Sequence[str]) -> list[Path]:
            found = find_images([paths] if isinstance(paths, str) else list(paths))
            if not found:
                raise RecogError(f"{paths}: no image files")
            return found

        require_class_logits(self.task)
        outside_files = files(out)
        batch = self._batch()
        args = (self.task, self.model, self.spec)
        if inputs is None:
            inside = collect_dataset(*args, self._dataset(None), self.device, batch_size=batch)
        else:
            inside = collect_files(*args, files(inputs), self.device, batch_size=batch)
        outside = collect_files(*args, outside_files, self.device, batch_size=batch)
        stats = fitting.reference_stats(
            *args, type(self.task).load_reference(self.config), self.device, batch_size=batch
        )
        table = fitting.ood_table(inside, outside, stats)
        target = Path(save_dir) if save_dir is not None else self.run_dir
        rio.atomic_write_text(target / OOD_REPORT_NAME, json.dumps(table, indent=2) + "\n")
        return table


def _same_size_runs(
    prepared: list[tuple[torch.Tensor, Any]],
) -> list[list[tuple[torch.Tensor, Any]]]:
    """Consecutive runs of prepared images with one shape (order kept)."""
    runs: list[list[tuple[torch.Tensor, Any]]] = []
    for item in prepared:
        if runs and runs[-1][0][0].shape == item[0].shape:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _as_image_list(images: Any) -> list[Any]:
    if isinstance(images, str | Path):
        from recog.data import find_images

        return list(find_images([str(images)]))
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return list(images)
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if isinstance(images, Iterable) and not isinstance(images, torch.Tensor | np.ndarray):
        return list(images)
    return [images]


def _to_tensor(item: Any) -> torch.Tensor:
    """Anything image-like -> (3, H, W) uint8 RGB."""
    from recog.data import read_image

    if isinstance(item, str | Path):
        return read_image(Path(item))
    if isinstance(item, np.ndarray):
        item = torch.from_numpy(np.ascontiguousarray(item))
        if item.ndim == 3 and item.shape[-1] in (1, 3, 4):
            item = item.permute(2, 0, 1)
    if isinstance(item, torch.Tensor):
        t = item
        if t.ndim == 2:
            t = t.unsqueeze(0)
        if t.dtype != torch.uint8:
            t = (
                (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
                if t.is_floating_point()
                else t.to(torch.uint8)
            )
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        return t[:3].contiguous()
    try:
        from PIL import Image

        if isinstance(item, Image.Image):
            return torch.from_numpy(np.asarray(item.convert("RGB")).copy()).permute(2, 0, 1)
    except ImportError:  # pragma: no cover
        pass
    raise RecogError(f"cannot use {type(item).__name__} as an image")
