"""`train`: resolve a run's config, build data, model and task, run the engine, write the run (one job).

Whatever the user left out is chosen by the recipe (`recog.recipe`) and recorded in
the run's `config.yaml`; the run directory's outputs are `recog.report.run_outputs`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

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
from recog.config import BUDGET_FIELDS, NONE, TrainConfig, require_resolved
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
from recog.resolve import resolve_config


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
        if not (run_dir / CHECKPOINT_NAME).is_file() and (run_dir / WEIGHTS_NAME).is_file():
            # a run stopped before its first checkpoint has no weights either: these are
            # a run's trained weights, which starting over would replace (issue 33)
            raise RecogError(
                f"{run_dir}: has trained weights ({WEIGHTS_NAME}) but no {CHECKPOINT_NAME} to "
                f"resume from; train a new run (--out) instead"
            )
        given = {"data": data, "model": model} if data is not None or model is not None else {}
        cfg = _resume_config(run_dir, {**given, **overrides}, config=config, exist_ok=exist_ok)
        overrides = {}
    else:
        cfg = config or TrainConfig()
        if data is not None:
            cfg = dataclasses.replace(cfg, data=str(data))
        if model is not None:
            cfg = dataclasses.replace(cfg, model=model)
    if overrides:
        cfg = TrainConfig.from_dict({**cfg.to_dict(), **overrides}, source="train()")
        if {"adv_eps", "adv_steps", "adv_mix"} & set(overrides) and cfg.adv_train == "none":
            raise RecogError(
                "adv_eps, adv_steps and adv_mix: only with adv_train pgd, fgsm-rs or trades"
            )
        if {"distill_weight", "distill_temperature"} & set(overrides) and cfg.teacher == NONE:
            raise RecogError("distill_weight and distill_temperature: only with a teacher run")
    if resume is None and cfg.out:
        _check_out(Path(cfg.out), exist_ok=exist_ok, data=cfg.data)
    check_log(cfg.log, cfg.log_uri)  # a tracker's missing package, before anything runs
    ctx = DistContext.from_env(cfg.device)
    try:
        return _train(
            cfg, ctx, resume_dir=Path(resume) if resume is not None else None, exist_ok=exist_ok
        )
    finally:
        ctx.close()


#: what a resumed run may be given: a budget that extends it (recorded in its config.yaml).
#: Anything else would make the run's last epochs another experiment than its first
#: (`--resume RUN --lr 0.1` was once silently ignored, issue 33).
RESUMABLE = ("epochs", "steps", "time")


def _resume_config(
    run_dir: Path, overrides: dict[str, Any], *, config: TrainConfig | None, exist_ok: bool
) -> TrainConfig:
    """RUN/config.yaml with the budget `overrides` give; any other setting that differs
    from the run's is refused, naming its flag."""
    if config is not None or exist_ok:
        flag = "--config" if config is not None else "--exist-ok"
        raise RecogError(f"{flag}: not with --resume (a resumed run keeps {run_dir / CONFIG_NAME})")
    cfg = TrainConfig.load(run_dir / CONFIG_NAME)
    if (run_dir / WEIGHTS_NAME).is_file():  # the kept epoch's weights: read back at the end
        rio.read_weights(run_dir / WEIGHTS_NAME)
    wanted = TrainConfig.from_dict({**cfg.to_dict(), **overrides}, source="command line")
    for key, value in overrides.items():
        if key not in RESUMABLE and getattr(wanted, key) != getattr(cfg, key):
            flag = "--" + key.replace("_", "-")
            raise RecogError(
                f"{flag} cannot change on --resume; start a new run with "
                f"--config {run_dir / CONFIG_NAME} {flag} {_as_flag_value(value)}"
            )
    budget = {k: getattr(wanted, k) for k in RESUMABLE if k in overrides}
    if {"epochs", "steps"} & set(budget):  # one replaces the other, as on a new run
        budget = {"epochs": None, "steps": None, **budget}
    return dataclasses.replace(cfg, **budget)


def _as_flag_value(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


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
        from recog.models.pretrained import load_start

        res.notes.append(
            "loaded " + load_start(model, spec, str(cfg.weights), model_args=cfg.model_args)
        )
    if cfg.freeze_backbone:
        from recog.models.weights import freeze_backbone

        freeze_backbone(model, spec)
    task = build_task(cfg, splits.class_names, spec)
    from recog.api.objective import training_objective

    objective = training_objective(cfg, task, model, splits.class_names, load_run=load)
    open_budget = (cfg.epochs is None and cfg.steps is None) or bool(cfg.time)
    measured = None
    if open_budget or cfg.amp == "auto":  # `auto` on a CPU: the probe times bf16 against fp32
        from recog.engine.probe import probe

        measured = ctx.broadcast(
            probe(cfg, task, model, splits.train, splits.val, ctx, objective=objective)
        )
    before = res.config.to_dict()
    res = recipe.resolve_budget(res, facts, probe=measured, world_size=ctx.world_size)
    after = res.config.to_dict()
    if any(after[k] != before[k] for k in after if k not in BUDGET_FIELDS | {"ema", "amp"}):
        # the cap changed something the loaders read (the mosaic-off epochs): load again
        splits = task_cls.load_splits(res.config)
    uri = tracking_uri(res.config.log, res.config.log_uri, run_dir)
    cfg = require_resolved(
        dataclasses.replace(
            res.config, out=str(run_dir), name=run_dir.resolve().name or "run", log_uri=uri
        ),
        "train",
    )
    resume = resume_dir is not None and (resume_dir / CHECKPOINT_NAME).is_file()
    if resume:
        # what the trainer would refuse in last.ckpt, refused before config.yaml is rewritten
        # and the run's calibration removed below (read twice: a resume is rare, a lost file not)
        path = run_dir / CHECKPOINT_NAME
        batch, epochs = int(cfg.batch_size), int(cfg.epochs)  # type: ignore[arg-type]
        spe = recipe.steps_per_epoch(len(splits.train), batch, cfg.accumulate, ctx.world_size)
        checkpoint.check(path, rio.load_checkpoint(path), model=model, model_name=str(cfg.model),
                         epochs=epochs, steps=epochs * spe)  # fmt: skip
    if ctx.is_main:
        if resume:
            rio.remove_stale_temps(run_dir)
        elif resume_dir is not None:
            # killed before its first checkpoint: the run starts over, with nothing of before
            _clear_run(run_dir)
        _print_start(
            recipe.start_block(
                facts, res, run_dir, device=str(ctx.device), world_size=ctx.world_size
            )
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in CONFIDENCE_FILES:  # fitted to the model this run is about to replace
            (run_dir / name).unlink(missing_ok=True)
        cfg.save(run_dir / CONFIG_NAME)
        rio.atomic_write_text(run_dir / LABELS_NAME, json.dumps(splits.class_names, indent=1))
    tracker = open_tracker(cfg.log if ctx.is_main else "none", uri, run_dir, task=str(cfg.task))
    tracker.start(cfg.to_dict())
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
        objective=objective,
        on_epoch=tracker.log_epoch,
        head=spec.head,
    )
    try:
        result = trainer.fit()
    except BaseException:
        tracker.fail()
        raise
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
        from recog.engine.peek import first_train_batch
        from recog.report.run_outputs import write_outputs

        metrics = write_outputs(
            run_dir,
            task=task,
            acc=acc,
            extra_metrics={
                "train_seconds": round(result.train_seconds, 3),
                "best_epoch": result.best_epoch,
                "epochs_run": result.epochs_run,
                # what the run was planned to take and what fitted its time (issue 34)
                "planned_steps": min(int(cfg.epochs) * _steps_per_epoch(cfg, splits, ctx),  # type: ignore[arg-type]
                                     int(cfg.steps or 10**18)),  # fmt: skip
                "fitted_steps": result.steps,
                "skipped_images": len(splits.skipped),
                **result.objective_metrics,  # the kept epoch's robust metrics, if any
            },
            samples=samples,
            results_csv=run_dir / RESULTS_NAME,
            config=cfg.to_dict(),
            splits=splits,
            train_batch=first_train_batch(trainer),
            title=f"recog {cfg.task}: {cfg.model} on {splits.name}",
            summary={
                "task": str(cfg.task),
                "model": cfg.model,
                "weights": (
                    f"{cfg.pretrained['name']} ({cfg.pretrained['source']}, "
                    f"sha256 {cfg.pretrained.get('sha256', '?')[:12]})"
                    if cfg.pretrained
                    else "none (from scratch)"
                ),
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
        tracker.finish(metrics)
        _say_cut(res, metrics)
    return Recognizer(
        run_dir=run_dir,
        config=cfg,
        class_names=splits.class_names,
        model=model,
        spec=spec,
        task=task,
        device=ctx.device,
    )


def _steps_per_epoch(cfg: TrainConfig, splits: Any, ctx: DistContext) -> int:
    return recipe.steps_per_epoch(len(splits.train), int(cfg.batch_size), cfg.accumulate,  # type: ignore[arg-type]
                                  ctx.world_size)  # fmt: skip


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
