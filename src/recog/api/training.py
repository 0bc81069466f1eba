"""`train`: from what a user asks to a written run, in plain steps (one job).

`_train` is the sequence: survey and resolve (`recog.resolve`), build data,
model and task, probe and fit the budget to this machine, place the run,
fit (the engine), report.  Whatever the user left out is chosen by the
recipe (`recog.recipe`) and recorded in the run's `config.yaml`; the run
directory's outputs are `recog.report.run_outputs`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Sampler

from recog import io as rio
from recog import recipe
from recog.api.recognizer import Recognizer, load
from recog.api.runs import (
    CONFIG_NAME,
    LABELS_NAME,
    _check_out,
    _clear_run,
    _run_dir,
    build_model,
    build_task,
)
from recog.confidence import CONFIDENCE_FILES
from recog.config import NONE, TrainConfig, TrainRequest
from recog.engine import checkpoint
from recog.engine.distributed import DistContext
from recog.engine.tracking import check_log, open_tracker, tracking_uri
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
from recog.models.registry import ModelSpec
from recog.resolve import resolve_config
from recog.tasks import Task
from recog.types import DataFacts


# --------------------------------------------------------------------- train
def train(
    data: str | None = None,
    model: str | None = None,
    *,
    config: TrainRequest | TrainConfig | None = None,
    resume: str | Path | None = None,
    exist_ok: bool = False,
    **overrides: Any,
) -> Recognizer:
    """Train a model and write its run directory; returns the trained `Recognizer`.

    `recog.train("digits", "cnn", epochs=15)` or `recog.train(config=TrainRequest(...))`
    (a run's `TrainConfig` is taken as a request that gives every option).
    Whatever is left out is chosen by the recipe (`recog.recipe`) and recorded
    in the run's `config.yaml`.  `resume=RUN_DIR` continues an interrupted
    run from its `last.ckpt` (or starts it over when it was stopped before
    its first checkpoint).  `exist_ok=True` lets `out` name an existing run,
    whose outputs are removed before training starts.
    """
    if isinstance(config, TrainConfig):
        config = TrainRequest.from_dict(config.to_dict(), source="config")
    given = {k: v for k, v in (("data", data), ("model", model)) if v is not None}
    if resume is not None:
        request = _resume_request(Path(resume), {**given, **overrides}, config=config,
                                  exist_ok=exist_ok)  # fmt: skip
    else:
        request = (config or TrainRequest()).replace(**{k: str(v) for k, v in given.items()})
        if overrides:
            request = TrainRequest.from_dict({**request.given(), **overrides}, source="train()")
            _check_related(request, overrides)
    if resume is None and request.out:
        _check_out(Path(request.out), exist_ok=exist_ok, data=request.data)
    check_log(request.log, request.log_uri)  # a tracker's missing package, before anything runs
    ctx = DistContext.from_env(request.device)
    try:
        resume_dir = Path(resume) if resume is not None else None
        return _train(request, ctx, resume_dir=resume_dir, exist_ok=exist_ok)
    finally:
        ctx.close()


def _check_related(request: TrainRequest, overrides: dict[str, Any]) -> None:
    """Options that mean something only beside another are refused without it."""
    if {"adv_eps", "adv_steps", "adv_mix"} & set(overrides) and request.adv_train == "none":
        raise RecogError(
            "adv_eps, adv_steps and adv_mix: only with adv_train pgd, fgsm-rs or trades"
        )
    if {"distill_weight", "distill_temperature"} & set(overrides) and request.teacher == NONE:
        raise RecogError("distill_weight and distill_temperature: only with a teacher run")


#: what a resumed run may be given: a budget that extends it (recorded in its config.yaml).
#: Anything else would make the run's last epochs another experiment than its first
#: (`--resume RUN --lr 0.1` was once silently ignored, issue 33).
RESUMABLE = ("epochs", "steps", "time")


def _resume_request(
    run_dir: Path, overrides: dict[str, Any], *, config: TrainRequest | None, exist_ok: bool
) -> TrainRequest:
    """RUN/config.yaml as a request that gives every option, with the budget `overrides`
    give; any other setting that differs from the run's is refused, naming its flag."""
    if not (run_dir / CONFIG_NAME).is_file():
        raise RecogError(f"{run_dir}: nothing to resume (no {CONFIG_NAME})")
    if not (run_dir / CHECKPOINT_NAME).is_file() and (run_dir / WEIGHTS_NAME).is_file():
        # a run stopped before its first checkpoint has no weights either: these are
        # a run's trained weights, which starting over would replace (issue 33)
        raise RecogError(
            f"{run_dir}: has trained weights ({WEIGHTS_NAME}) but no {CHECKPOINT_NAME} to "
            f"resume from; train a new run (--out) instead"
        )
    if config is not None or exist_ok:
        flag = "--config" if config is not None else "--exist-ok"
        raise RecogError(f"{flag}: not with --resume (a resumed run keeps {run_dir / CONFIG_NAME})")
    run = TrainConfig.load(run_dir / CONFIG_NAME)
    if (run_dir / WEIGHTS_NAME).is_file():  # the kept epoch's weights: read back at the end
        rio.read_weights(run_dir / WEIGHTS_NAME)
    wanted = TrainRequest.from_dict({**run.to_dict(), **overrides}, source="command line")
    for key, value in overrides.items():
        if key not in RESUMABLE and getattr(wanted, key) != getattr(run, key):
            flag = "--" + key.replace("_", "-")
            raise RecogError(
                f"{flag} cannot change on --resume; start a new run with "
                f"--config {run_dir / CONFIG_NAME} {flag} {_as_flag_value(value)}"
            )
    request = TrainRequest.from_dict(run.to_dict(), source=str(run_dir / CONFIG_NAME))
    budget = {k: getattr(wanted, k) for k in RESUMABLE if k in overrides}
    if {"epochs", "steps"} & set(budget):  # one replaces the other, as on a new run
        request = request.replace(epochs=None, steps=None)
    return request.replace(**budget)


def _as_flag_value(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@dataclass
class _Built:
    """What a run trains: its data, model, task and objective, built from its record."""

    splits: Any
    model: nn.Module
    spec: ModelSpec
    task: Task
    objective: Any
    sampler: Sampler | None


def _train(
    request: TrainRequest, ctx: DistContext, *, resume_dir: Path | None, exist_ok: bool = False
) -> Recognizer:
    res, facts, task_cls = resolve_config(
        request, device_type=ctx.device.type, world_size=ctx.world_size
    )
    seed_all(res.config.seed, deterministic=res.config.deterministic)  # data, then the model
    built = _build(res, task_cls, ctx)
    res = _fit_budget(res, facts, built, task_cls, ctx)
    run_dir = resume_dir or ctx.broadcast(
        _run_dir(res.config, built.splits.name, exist_ok=exist_ok) if ctx.is_main else None
    )
    uri = tracking_uri(res.config.log, res.config.log_uri, run_dir)
    cfg = dataclasses.replace(
        res.config, out=str(run_dir), name=run_dir.resolve().name or "run", log_uri=uri
    )
    resume = resume_dir is not None and (resume_dir / CHECKPOINT_NAME).is_file()
    if resume:
        _check_checkpoint(cfg, built, run_dir, ctx)
    if ctx.is_main:
        _write_start(cfg, res, facts, built, run_dir, ctx, resume=resume, resume_dir=resume_dir)
    tracker = open_tracker(cfg.log if ctx.is_main else "none", uri, run_dir, task=str(cfg.task))
    tracker.start(cfg.to_dict())
    trainer = Trainer(
        cfg,
        built.task,
        built.model,
        built.splits.train,
        built.splits.val,
        ctx,
        run_dir=run_dir,
        weights_metadata={"model": cfg.model, "task": str(cfg.task)},
        sampler=built.sampler,
        resume=resume,
        objective=built.objective,
        on_epoch=tracker.log_epoch,
        head=built.spec.head,
    )
    try:
        result = trainer.fit()
    except BaseException:
        tracker.fail()
        raise
    if ctx.is_main:
        metrics = _report(cfg, res, built, trainer, result, run_dir, ctx)
        tracker.finish(metrics)
        _say_cut(res, metrics)
    return Recognizer(
        run_dir=run_dir,
        config=cfg,
        class_names=built.splits.class_names,
        model=trainer.model,
        spec=built.spec,
        task=built.task,
        device=ctx.device,
    )


def _build(res: recipe.Resolution, task_cls: type[Task], ctx: DistContext) -> _Built:
    """The data, the model (loaded with its pretrained weights), the task and the objective."""
    from recog.api.objective import training_objective
    from recog.data import balanced_sampler

    cfg = res.config
    splits = task_cls.data.splits(cfg)
    if ctx.enabled and cfg.balanced:
        raise RecogError(
            "--balanced is not supported with torchrun (DistributedSampler shards the data)"
        )
    model, spec = build_model(cfg, len(splits.class_names))
    if cfg.weights != NONE:
        from recog.models.weights import load_start

        res.notes.append(
            "loaded " + load_start(model, spec, cfg.weights, model_args=cfg.model_args)
        )
    if cfg.freeze_backbone:
        from recog.models.weights import freeze_backbone

        freeze_backbone(model, spec)
    task = build_task(cfg, splits.class_names, spec)
    objective = training_objective(cfg, task, model, splits.class_names, load_run=load)
    # the global RNG, re-seeded every epoch by the engine, keeps resume exact
    sampler = balanced_sampler(splits.train_labels) if cfg.balanced else None
    return _Built(splits, model, spec, task, objective, sampler)


def _fit_budget(
    res: recipe.Resolution,
    facts: DataFacts,
    built: _Built,
    task_cls: type[Task],
    ctx: DistContext,
) -> recipe.Resolution:
    """The plan's budget fitted to this machine from a probe of real steps (where the budget
    is open or `--amp auto` asks bf16 against float32); data read again only where the fitted
    budget changed what the loaders read (`recipe.LOADER_FIELDS`)."""
    open_budget = (res.request.epochs is None and res.request.steps is None) or bool(
        res.request.time
    )
    measured = None
    if open_budget or res.config.amp == "auto":
        from recog.engine.probe import probe

        measured = ctx.broadcast(
            probe(res.config, built.task, built.model, built.splits.train, built.splits.val, ctx,
                  objective=built.objective)
        )  # fmt: skip
    fitted = recipe.resolve_budget(res, facts, probe=measured, world_size=ctx.world_size)
    if any(getattr(fitted.config, k) != getattr(res.config, k) for k in recipe.LOADER_FIELDS):
        built.splits = task_cls.data.splits(fitted.config)
    return fitted


def _check_checkpoint(cfg: TrainConfig, built: _Built, run_dir: Path, ctx: DistContext) -> None:
    """What the trainer would refuse in last.ckpt, refused before config.yaml is rewritten and
    the run's calibration removed (read twice: a resume is rare, a lost file not)."""
    path = run_dir / CHECKPOINT_NAME
    spe = recipe.steps_per_epoch(len(built.splits.train), cfg.batch_size, cfg.accumulate,
                                 ctx.world_size)  # fmt: skip
    checkpoint.check(path, rio.load_checkpoint(path), model=built.model, model_name=cfg.model,
                     epochs=cfg.epochs, steps=cfg.epochs * spe)  # fmt: skip


def _write_start(
    cfg: TrainConfig,
    res: recipe.Resolution,
    facts: DataFacts,
    built: _Built,
    run_dir: Path,
    ctx: DistContext,
    *,
    resume: bool,
    resume_dir: Path | None,
) -> None:
    """The start block, and the run folder's config.yaml and labels.json."""
    if resume:
        rio.remove_stale_temps(run_dir)
    elif resume_dir is not None:
        # killed before its first checkpoint: the run starts over, with nothing of before
        _clear_run(run_dir)
    _print_start(
        recipe.start_block(facts, res, run_dir, device=str(ctx.device), world_size=ctx.world_size)
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in CONFIDENCE_FILES:  # fitted to the model this run is about to replace
        (run_dir / name).unlink(missing_ok=True)
    cfg.save(run_dir / CONFIG_NAME)
    rio.atomic_write_text(run_dir / LABELS_NAME, json.dumps(built.splits.class_names, indent=1))


def _report(
    cfg: TrainConfig,
    res: recipe.Resolution,
    built: _Built,
    trainer: Trainer,
    result: Any,
    run_dir: Path,
    ctx: DistContext,
) -> dict[str, Any]:
    """The kept model's final evaluation, written out as metrics, plots and the report."""
    from recog.engine.peek import first_train_batch
    from recog.report.run_outputs import write_outputs

    splits, task, model = built.splits, built.task, trainer.model
    acc = final_evaluation(task, model, splits.val, DistContext(device=ctx.device),
                           batch_size=cfg.batch_size * 2)  # fmt: skip
    spe = recipe.steps_per_epoch(len(splits.train), cfg.batch_size, cfg.accumulate,
                                 ctx.world_size)  # fmt: skip
    return write_outputs(
        run_dir,
        task=task,
        acc=acc,
        extra_metrics={
            "train_seconds": round(result.train_seconds, 3),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            # what the run was planned to take and what fitted its time (issue 34)
            "planned_steps": min(cfg.epochs * spe, cfg.steps),
            "fitted_steps": result.steps,
            "skipped_images": len(splits.skipped),
            **result.objective_metrics,  # the kept epoch's robust metrics, if any
        },
        samples=sample_predictions(task, model, splits.val, ctx.device),
        results_csv=run_dir / RESULTS_NAME,
        config=cfg.to_dict(),
        splits=splits,
        train_batch=first_train_batch(trainer),
        title=f"recog {cfg.task}: {cfg.model} on {splits.name}",
        summary=_summary(cfg, res, splits, result, run_dir),
    )


def _summary(
    cfg: TrainConfig, res: recipe.Resolution, splits: Any, result: Any, run_dir: Path
) -> dict[str, Any]:
    """The report's first table: what trained on what, how long, from which weights."""
    weights = "none (from scratch)"
    if cfg.pretrained:
        sha = cfg.pretrained.get("sha256", "?")[:12]
        weights = f"{cfg.pretrained['name']} ({cfg.pretrained['source']}, sha256 {sha})"
    return {
        "task": str(cfg.task),
        "model": cfg.model,
        "weights": weights,
        "data": cfg.data,
        "classes": len(splits.class_names),
        "train images": len(splits.train),
        "val images": len(splits.val),
        "epochs": f"{result.epochs_run}/{cfg.epochs}",
        "best epoch": result.best_epoch,
        "train seconds": round(result.train_seconds, 1),
        "run directory": str(run_dir),
        "recipe": "; ".join(res.notes),
    }


def _say_cut(res: Any, metrics: dict[str, Any]) -> None:
    """The final summary's warning when the time cap cut the plan by more than half."""
    planned, fitted = metrics.get("planned_steps", 0), metrics.get("fitted_steps", 0)
    if res.budget_cut and fitted < planned / 2:
        from recog.console import warn

        warn(
            f"the run took {fitted:,} of its {planned:,} planned steps (the "
            f"{recipe.DEFAULT_TIME_CAP // 60}-minute cap): {res.budget_cut.split('; ', 1)[-1]}"
        )


def _print_start(lines: list[str]) -> None:
    from recog.console import console

    out = console()
    for line in lines:
        out.print(line, markup=False)
