"""The one training loop every task shares (one job: the epoch loop, its checkpoint, EMA, early stopping and table read the same state).

The loop knows nothing about tasks or model types: the Task seam supplies
collation, the loss dict, predictions and metrics.  It owns AMP, gradient
accumulation and clipping, the per-step schedule, EMA, early stopping,
best-by-metric checkpointing, exact resume from `last.ckpt`, DDP, progress
and `results.csv` (each of whose rows `on_epoch` hears: experiment trackers).

Time budget (`cfg.time` seconds, `--time`): the learning rate follows the
fraction of the time used; an epoch starts only while at least half an
epoch's time is left, and its training stops early enough to leave time for
its validation, so the run ends on time with the best epoch's weights.

Objective: what a training step minimizes is `objective.loss(task, net, model,
batch)` (by default the task's own loss; adversarial training, `recog.robust.training`,
attacks the batch first), and `objective.validate` may add columns after each
validation; the loop never knows which.

Exact resume: every epoch re-seeds all RNGs from (seed, epoch), so the data
order and augmentation of epoch k do not depend on how the run got there;
with the model, optimizer, scheduler, scaler and EMA states restored, an
interrupted-and-resumed deterministic run repeats the uninterrupted one.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from recog import io as rio
from recog.config import TrainConfig, require_resolved
from recog.console import progress_bar
from recog.engine import checkpoint as ckpt
from recog.engine.distributed import DistContext
from recog.engine.evaluator import ShardSampler, evaluate
from recog.engine.logging import EpochTable, ResultsTable
from recog.engine.objective import TaskObjective, TrainingObjective
from recog.engine.optim import amp_dtype, build_ema, build_optimizer, build_scheduler
from recog.errors import RecogError
from recog.metrics.base import Accumulator
from recog.tasks.base import Task
from recog.types import Prediction

CHECKPOINT_NAME = "last.ckpt"
WEIGHTS_NAME = "model.safetensors"
RESULTS_NAME = "results.csv"

#: A loss whose mean over its last BLOWUP_STEPS steps passes BLOWUP times the run's first step's
#: loss has diverged (fastai's learning-rate finder stops at 4x too).  The first loss is the
#: untrained model's (a classifier's is about ln(classes), a uniform guess), so four times it
#: is confidently wrong, which a merely noisy run never reaches: digits/cnn at --lr 10 reached
#: a 10-step mean of 11.6 against a first 2.47 (4.7x) in epoch 3 and ended at chance after 44
#: epochs, while at the default rate no step passed 1.04x its first.  A mean, not one step: a
#: single hard batch does not stop a run.  The first loss counts as at least 1: a run that
#: starts near 0 (fine-tuning a trained model) must not stop at a noisy 0.05.
BLOWUP, BLOWUP_STEPS = 4.0, 10


def seed_all(seed: int, *, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The scalar metrics (what goes in results.csv)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _not_finite(model: nn.Module, metrics: dict[str, Any], val_loss: str | None) -> str:
    """What is not finite after an epoch, '' when nothing: a weight or buffer (a BatchNorm's
    running variance can overflow while every training loss was finite), else the validation
    loss (outputs that overflow from finite weights: a model that would answer NaN)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"its weight {name} is not finite (NaN or inf)"
    value = metrics.get(val_loss) if val_loss else None
    if isinstance(value, float | int) and not math.isfinite(value):
        return f"the validation {val_loss} is {value}"
    return ""


@dataclass
class FitResult:
    metrics: dict[str, Any]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    #: optimizer steps taken (under a time budget, what fitted of `epochs x steps per epoch`)
    steps: int = 0
    #: the objective's validation columns at the best epoch (robust_top1, ...)
    objective_metrics: dict[str, float] = field(default_factory=dict)


class _Clock:
    """Seconds of the run so far: finished epochs plus the current one's elapsed time."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.start: float | None = None

    def __call__(self) -> float:
        running = time.perf_counter() - self.start if self.start is not None else 0.0
        return self.state.seconds + running


@dataclass
class _State:
    epoch: int = 0  # next epoch to run
    best: float = -math.inf
    best_epoch: int = -1
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_extra: dict[str, float] = field(default_factory=dict)  # the objective's columns
    bad_epochs: int = 0
    seconds: float = 0.0
    first_loss: float | None = None  # the run's first step's loss (BLOWUP)


class _LossWatch:
    """Stops a run whose training loss is not finite or has exploded (`BLOWUP`): a RecogError
    naming the epoch and step, what is kept, and the learning rate to lower."""

    def __init__(self, state: _State, epoch: int, advice: str) -> None:
        self.state, self.epoch, self.advice = state, epoch, advice
        self.recent: deque[float] = deque(maxlen=BLOWUP_STEPS)

    def __call__(self, step: int, loss: torch.Tensor) -> None:
        value = float(loss)
        where = f"training diverged at epoch {self.epoch + 1}, step {step + 1}: the loss is"
        if not math.isfinite(value):
            raise RecogError(f"{where} {value} (not finite); {self.advice}")
        if self.state.first_loss is None:
            self.state.first_loss = value
        first = self.state.first_loss
        self.recent.append(value)
        mean = sum(self.recent) / len(self.recent)
        if len(self.recent) == BLOWUP_STEPS and mean > BLOWUP * max(first, 1.0):
            raise RecogError(
                f"{where} {mean:.4g} (mean of its last {BLOWUP_STEPS} steps), over {BLOWUP:g}x "
                f"its first step's {first:.4g} (or 1); {self.advice}"
            )


class Trainer:
    """Fits `model` on `train` for `cfg.epochs`, evaluating on `val` after each epoch."""

    def __init__(
        self,
        cfg: TrainConfig,
        task: Task,
        model: nn.Module,
        train: Dataset,
        val: Dataset,
        ctx: DistContext,
        *,
        run_dir: Path | None,
        weights_metadata: dict[str, str] | None = None,
        sampler: Sampler[int] | None = None,
        resume: bool = False,
        objective: TrainingObjective | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
        head: tuple[str, ...] = (),
    ) -> None:
        """`head`: parameter-name prefixes of a new head, which fine-tuning (`head_epochs`,
        `backbone_lr`) trains apart from the rest of the network."""
        self.cfg, self.task, self.ctx = require_resolved(cfg, "trainer"), task, ctx
        self.head = head
        self.objective = objective or TaskObjective()
        # channels-last convolutions: +25-40% training throughput on CPU for our CNNs (measured,
        # bench/classify_train.py), and the layout tensor cores prefer on GPU.
        self.model = model.to(ctx.device, memory_format=torch.channels_last)
        self.train_set, self.val_set = train, val
        self.run_dir = run_dir if ctx.is_main else None
        self.ckpt_dir = run_dir
        self.weights_metadata = weights_metadata or {}
        self.sampler, self.resume, self.on_epoch = sampler, resume, on_epoch or (lambda _: None)
        self.amp = amp_dtype(ctx.device, cfg.amp)

    # ----------------------------------------------------------------- loaders
    def _loader(
        self, dataset: Dataset, sampler: Sampler[int] | None, batch_size: int
    ) -> DataLoader:
        workers = self.cfg.workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=self.task.collate,
            pin_memory=self.ctx.device.type == "cuda",
            persistent_workers=False,
            drop_last=False,
        )

    def train_loader(self) -> DataLoader:
        """One seeded permutation an epoch (`DistributedSampler`, also for one process), each
        rank taking every world_size-th image: the ranks' batches together are the one
        process's batch of the same global size, so torchrun over N processes (or nodes)
        of batch B trains on the images one process of batch N x B would."""
        sampler: Sampler[int] | None = self.sampler
        if sampler is None or self.ctx.enabled:
            sampler = DistributedSampler(
                self.train_set,
                num_replicas=self.ctx.world_size,
                rank=self.ctx.rank,
                shuffle=True,
                seed=self.cfg.seed,
            )
        return self._loader(self.train_set, sampler, self.cfg.batch_size)

    def val_loader(self) -> DataLoader:
        sampler = ShardSampler(len(self.val_set), self.ctx.rank, self.ctx.world_size)  # type: ignore[arg-type]
        return self._loader(self.val_set, sampler, self.cfg.batch_size * 2)

    # -------------------------------------------------------------------- fit
    def fit(self) -> FitResult:
        cfg, ctx, task = self.cfg, self.ctx, self.task
        if len(self.train_set) == 0:  # type: ignore[arg-type]
            raise RecogError("no training images")
        model = self.model
        if ctx.enabled and cfg.sync_bn == "on":
            # in place below the root: `model`'s parameters stay the optimizer's
            model = self.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net: nn.Module = DistributedDataParallel(model) if ctx.enabled else model
        loader = self.train_loader()
        steps_per_epoch = math.ceil(len(loader) / cfg.accumulate)
        optimizer = build_optimizer(cfg, model, head=self.head)
        state = _State()
        budget = float(cfg.time or 0.0)
        clock = _Clock(state)
        scheduler = build_scheduler(
            cfg, optimizer, steps_per_epoch, progress=(lambda: clock() / budget) if budget else None
        )
        ema = build_ema(model, cfg.ema) if cfg.ema else None
        scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == torch.float16)
        rows: list[dict[str, Any]] = []
        if self.resume:
            assert self.ckpt_dir is not None
            path = self.ckpt_dir / CHECKPOINT_NAME
            ckpt.restore(
                path,
                rio.load_checkpoint(path),
                {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
                | ({"ema": ema} if ema is not None else {}),
                state=vars(state),  # the clock reads this same object
                model_name=str(cfg.model),
                epochs=int(cfg.epochs),  # type: ignore[arg-type]
                steps=int(cfg.epochs) * steps_per_epoch,  # type: ignore[arg-type]
            )
            rows = ResultsTable.read(self.ckpt_dir / RESULTS_NAME)[: state.epoch]
        table = ResultsTable(self.run_dir / RESULTS_NAME if self.run_dir else None, rows)
        stopped_early = False
        epochs = int(cfg.epochs)  # type: ignore[arg-type]
        # `--steps N` trains N optimizer steps, not the whole epochs they round up to
        limit = int(cfg.steps or 0) if int(cfg.steps or 0) < epochs * steps_per_epoch else 0
        val_seconds = 0.0
        lines = EpochTable(task.scores.primary, val_loss=task.scores.val_loss, epochs=epochs)
        selected = self.objective.selects(str(task.scores.primary))  # the best epoch's column
        with progress_bar(enabled=ctx.is_main) as bar:
            out = bar.console  # prints above the live bars; a console of its own writes over them
            for epoch in range(state.epoch, epochs):
                if limit and scheduler.last_epoch >= limit:  # --steps reached (a resume, too)
                    break
                planned = epochs
                if budget:
                    per_epoch = state.seconds / max(1, epoch) if epoch else 0.0
                    # agreed by every rank: rank 0's clock decides
                    left = ctx.broadcast(budget - state.seconds)
                    if epoch and left < per_epoch / 2:
                        break
                    planned = min(epochs, round(budget / per_epoch)) if per_epoch else epochs
                seed_all(cfg.seed * 1000 + epoch, deterministic=cfg.deterministic)
                if isinstance(loader.sampler, DistributedSampler):
                    loader.sampler.set_epoch(epoch)
                # datasets whose sampling changes over the run (a mosaic switched off
                # for the last epochs) hear the epoch the same way
                if callable(getattr(self.train_set, "set_epoch", None)):
                    self.train_set.set_epoch(epoch, planned)  # type: ignore[attr-defined]
                start = time.perf_counter()
                clock.start = start
                bar_id = bar.add_task(
                    f"epoch {epoch + 1}/{planned if budget else epochs}",
                    total=len(self.train_set),
                    info="",
                )  # type: ignore[arg-type]

                # under a time budget an epoch's training stops where its validation still fits;
                # a `--steps` budget stops at its step, inside the last epoch
                def deadline(v: float = val_seconds) -> bool:
                    over_time = bool(budget) and clock() >= budget - v
                    return over_time or bool(limit) and scheduler.last_epoch >= limit

                kept = (
                    f"{self.run_dir / CHECKPOINT_NAME} keeps epoch {state.epoch}"
                    if self.run_dir and state.epoch
                    else "no epoch was finished"
                )
                advice = f"{kept}; try a lower --lr (now {cfg.lr:g}) or --clip-grad"
                losses, images = self._train_epoch(
                    net,
                    model,
                    loader,
                    optimizer,
                    scheduler,
                    scaler,
                    ema,
                    bar,
                    bar_id,
                    deadline if budget or limit else None,
                    watch=_LossWatch(state, epoch, advice),
                )
                train_time = time.perf_counter() - start
                bar.remove_task(bar_id)
                eval_model = ema.module if ema is not None else model
                val_id = bar.add_task("  validate", total=len(self.val_set), info="")  # type: ignore[arg-type]
                # full precision (evaluate): the best epoch is picked on the numbers the
                # run reports (mask_rcnn, bf16 on CPU: mask_map 0.81 under autocast vs
                # 0.79 in float32 for the same weights)
                acc = evaluate(
                    eval_model,
                    task,
                    self.val_loader(),
                    ctx,
                    on_batch=lambda n, i=val_id: bar.advance(i, n),
                )
                bar.remove_task(val_id)
                metrics = acc.compute()
                extra = self.objective.validate(eval_model, task, self.val_loader(), ctx)
                # rank 0's verdict, so every rank stops together
                why = ctx.broadcast(_not_finite(eval_model, metrics, task.scores.val_loss))
                if why:  # before anything of this epoch is saved
                    raise RecogError(f"training diverged at epoch {epoch + 1}: {why}; {advice}")
                seconds = time.perf_counter() - start
                val_seconds = time.perf_counter() - start - train_time
                score = float({**metrics, **extra}.get(selected, -math.inf))
                improved = score > state.best
                row = {
                    "epoch": epoch + 1,
                    "lr": optimizer.param_groups[0]["lr"],
                    "seconds": seconds,
                    "train_images_per_second": ctx.world_size * images / max(train_time, 1e-9),
                    **{f"train_{k}": v for k, v in losses.items()},
                    **flat_metrics(metrics),
                    **extra,
                }
                state.seconds += seconds
                clock.start = None
                state.epoch = epoch + 1
                if improved:
                    state.best, state.best_epoch = score, epoch + 1
                    state.best_metrics, state.best_extra = metrics, extra
                    state.bad_epochs = 0
                    if self.run_dir:
                        rio.save_weights(
                            self.run_dir / WEIGHTS_NAME,
                            eval_model.state_dict(),
                            self.weights_metadata,
                        )
                else:
                    state.bad_epochs += 1
                if self.run_dir:
                    table.append(row)
                    rio.save_checkpoint(
                        self.run_dir / CHECKPOINT_NAME,
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict(),
                            **({"ema": ema.state_dict()} if ema is not None else {}),
                            "state": vars(state),
                            "rng": ckpt.rng_state(),
                            "format_version": rio.FORMAT_VERSION,
                        },
                    )
                else:
                    table.rows.append(row)
                if ctx.is_main:
                    out.print("\n".join(lines.lines(epoch, planned, row)), markup=False)
                    self.on_epoch(row)
                if cfg.patience and state.bad_epochs >= cfg.patience:
                    stopped_early = epoch + 1 < epochs
                    if ctx.is_main and stopped_early:
                        out.print(f"early stop: no {selected} gain in {cfg.patience} epochs")
                    break
                ctx.barrier()
        if state.best_epoch < 0:
            raise RecogError(f"training ran no epoch (epochs={cfg.epochs})")
        # The run's weights are the best epoch's; hand them back in memory too.
        best = ema.module if ema is not None else model
        if self.ckpt_dir is not None and (self.ckpt_dir / WEIGHTS_NAME).is_file():
            ctx.barrier()
            best.load_state_dict(rio.load_weights(self.ckpt_dir / WEIGHTS_NAME))
        if best is not self.model:
            self.model.load_state_dict(best.state_dict())
        return FitResult(
            metrics=state.best_metrics,
            best_epoch=state.best_epoch,
            epochs_run=state.epoch,
            train_seconds=state.seconds,
            stopped_early=stopped_early,
            history=table.rows,
            objective_metrics=state.best_extra,
            steps=int(scheduler.last_epoch),  # LambdaLR counts the optimizer steps taken
        )

    def _train_epoch(
        self,
        net,
        model,
        loader,
        optimizer,
        scheduler,
        scaler,
        ema,
        bar,
        bar_id,
        deadline=None,
        *,
        watch: _LossWatch,
    ) -> tuple[dict[str, float], int]:
        """One epoch; a loss that is not finite or has exploded stops the run (`watch`)."""
        cfg, ctx = self.cfg, self.ctx
        # each step's loss is checked one step later, so the device is never waited for
        pending: tuple[int, torch.Tensor] | None = None
        net.train()
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        seen = 0
        last = len(loader) - 1
        params = [p for p in model.parameters() if p.requires_grad]
        for step, batch in enumerate(loader):
            batch = batch.to(ctx.device, non_blocking=True)
            batch.images = batch.images.contiguous(memory_format=torch.channels_last)
            n = len(batch)
            with torch.autocast(
                ctx.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None
            ):
                parts = self.objective.loss(self.task, net, model, batch)
            if pending is not None:
                watch(*pending)
            pending = (step, parts["loss"].detach())
            scaler.scale(parts["loss"] / cfg.accumulate).backward()
            if (step + 1) % cfg.accumulate == 0 or step == last:
                if cfg.clip_grad:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
            for key, value in parts.items():
                sums[key] = sums.get(key, 0) + value.detach().float() * n
            seen += n
            bar.advance(bar_id, n)
            # only at an optimizer step, and the same on every rank (rank 0's clock)
            if deadline is not None and (step + 1) % cfg.accumulate == 0 and step < last:
                if ctx.broadcast(bool(deadline())):
                    break
        if pending is not None:
            watch(*pending)
        losses = {k: ctx.mean(float(v) / max(seen, 1)) for k, v in sums.items()}
        return losses, seen


def final_evaluation(
    task: Task,
    model: nn.Module,
    dataset: Dataset,
    ctx: DistContext,
    *,
    batch_size: int,
    workers: int = 0,
    select: Callable[[list[Prediction]], list[Prediction]] | None = None,
) -> Accumulator:
    """Evaluate `model` on `dataset` with the task's own collation (no training);
    `select` keeps part of each batch's predictions (`recog val --conf`)."""
    loader = DataLoader(
        dataset, batch_size=batch_size, num_workers=workers, collate_fn=task.collate
    )
    return evaluate(model.to(ctx.device), task, loader, ctx, select=select)


def sample_predictions(
    task: Task, model: nn.Module, dataset: Dataset, device: torch.device, count: int = 24
) -> Sequence:
    """(sample, prediction) pairs for the first `count` images, for the report grid."""
    n = min(count, len(dataset))  # type: ignore[arg-type]
    if n == 0:
        return []
    samples = [dataset[i] for i in range(n)]
    batch = task.collate(samples)
    model.eval()
    preds = task.predict(model.to(device), batch.images.to(device), batch.meta)
    return list(zip(samples, preds, strict=True))
