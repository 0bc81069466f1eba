"""The one training loop every task shares (one job: the epoch loop, its checkpoint, EMA, early stopping and table read the same state).

The loop knows nothing about tasks or model types: the Task seam supplies
collation, the loss dict, predictions and metrics.  It owns AMP, gradient
accumulation and clipping, the per-step schedule, EMA, early stopping,
best-by-metric checkpointing, exact resume from `last.ckpt`, DDP, progress
and `results.csv` (each of whose rows `on_epoch` hears: experiment trackers).

Time budget (`cfg.time` seconds, `--time`; `recog.engine.budget`): the
learning rate follows the fraction of the time used; an epoch starts only
while at least half an epoch's time is left, and its training stops early
enough to leave time for its validation, so the run ends on time with the
best epoch's weights.  A step budget (`--steps`) stops at its step.

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
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from recog import io as rio
from recog.config import TrainConfig
from recog.console import progress_bar
from recog.engine import checkpoint as ckpt
from recog.engine.budget import Budget
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


@dataclass
class _State:
    """The loop's counters, saved in `last.ckpt` beside the budget's (`_counters`)."""

    epoch: int = 0  # next epoch to run
    best: float = -math.inf
    best_epoch: int = -1
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_extra: dict[str, float] = field(default_factory=dict)  # the objective's columns
    bad_epochs: int = 0
    first_loss: float | None = None  # the run's first step's loss (BLOWUP)


def _counters(state: _State, budget: Budget) -> dict[str, Any]:
    """The loop's counters as `last.ckpt` saves them (its "state")."""
    return {**vars(state), **budget.state_dict()}


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


@dataclass
class _Fit:
    """What one `fit` trains with: the network (DDP-wrapped or not) and the model inside it,
    the loader, the optimizer and its schedule, the scaler, the EMA, the counters, the budget."""

    net: nn.Module
    model: nn.Module
    loader: DataLoader
    steps_per_epoch: int
    optimizer: Optimizer
    scheduler: LRScheduler
    scaler: torch.amp.GradScaler
    ema: AveragedModel | None
    budget: Budget
    selected: str  # the validation column the best epoch is picked on
    state: _State = field(default_factory=_State)
    table: ResultsTable = field(default_factory=lambda: ResultsTable(None, []))

    @property
    def eval_model(self) -> nn.Module:
        """What is validated and saved: the EMA's average where the run keeps one."""
        return self.ema.module if self.ema is not None else self.model

    def parts(self) -> dict[str, Any]:
        """The objects whose states `last.ckpt` holds, by their names there."""
        parts = {"model": self.model, "optimizer": self.optimizer}
        parts |= {"scheduler": self.scheduler, "scaler": self.scaler}
        return parts | ({"ema": self.ema} if self.ema is not None else {})


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
        self.cfg, self.task, self.ctx = cfg, task, ctx
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
        if len(self.train_set) == 0:  # type: ignore[arg-type]
            raise RecogError("no training images")
        run = self._prepare()
        rows = self._restore(run) if self.resume else []
        run.table = ResultsTable(self.run_dir / RESULTS_NAME if self.run_dir else None, rows)
        stopped_early = self._epochs(run)
        return self._result(run, stopped_early)

    def _prepare(self) -> _Fit:
        """The network, its optimizer, schedule, scaler and EMA, and the run's budget."""
        cfg, ctx = self.cfg, self.ctx
        model = self.model
        if ctx.enabled and cfg.sync_bn == "on":
            # in place below the root: `model`'s parameters stay the optimizer's
            model = self.model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net: nn.Module = DistributedDataParallel(model) if ctx.enabled else model
        loader = self.train_loader()
        steps_per_epoch = math.ceil(len(loader) / cfg.accumulate)
        optimizer = build_optimizer(cfg, model, head=self.head)
        epochs = int(cfg.epochs)
        budget = Budget.of(
            seconds=cfg.time, steps=cfg.steps, epochs=epochs, steps_per_epoch=steps_per_epoch
        )
        progress = budget.progress if budget.time_cap else None
        scheduler = build_scheduler(cfg, optimizer, steps_per_epoch, progress=progress)
        ema = build_ema(model, cfg.ema) if cfg.ema else None
        scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.amp == torch.float16)
        selected = self.objective.selects(str(self.task.scores.primary))
        return _Fit(net, model, loader, steps_per_epoch, optimizer, scheduler, scaler, ema,
                    budget, selected)  # fmt: skip

    def _restore(self, run: _Fit) -> list[dict[str, Any]]:
        """Puts `last.ckpt` back into `run` (its objects, counters, budget and the RNGs);
        returns the finished epochs' rows of `results.csv`."""
        cfg = self.cfg
        assert self.ckpt_dir is not None
        path = self.ckpt_dir / CHECKPOINT_NAME
        counters = _counters(run.state, run.budget)
        ckpt.restore(
            path,
            rio.load_checkpoint(path),
            run.parts(),
            state=counters,
            model_name=str(cfg.model),
            epochs=int(cfg.epochs),
            steps=int(cfg.epochs) * run.steps_per_epoch,
        )
        run.state = _State(**{name: counters[name] for name in vars(run.state)})
        run.budget.load_state_dict(counters)
        return ResultsTable.read(self.ckpt_dir / RESULTS_NAME)[: run.state.epoch]

    def _epochs(self, run: _Fit) -> bool:
        """Runs the epochs left, while the budget allows; True when early stopping ended them."""
        cfg, ctx, task = self.cfg, self.ctx, self.task
        epochs = int(cfg.epochs)
        lines = EpochTable(task.scores.primary, val_loss=task.scores.val_loss, epochs=epochs)
        with progress_bar(enabled=ctx.is_main) as bar:
            out = bar.console  # prints above the live bars; a console of its own writes over them
            for epoch in range(run.state.epoch, epochs):
                if run.budget.steps_reached(run.scheduler.last_epoch):  # a resume, too
                    break
                planned = run.budget.plan(epoch, epochs, ctx.broadcast)
                if planned is None:  # less than half an epoch's time is left
                    break
                row = self._epoch(run, epoch, planned, bar)
                if ctx.is_main:
                    out.print("\n".join(lines.lines(epoch, planned, row)), markup=False)
                    self.on_epoch(row)
                if cfg.patience and run.state.bad_epochs >= cfg.patience:
                    stopped_early = epoch + 1 < epochs
                    if ctx.is_main and stopped_early:
                        out.print(f"early stop: no {run.selected} gain in {cfg.patience} epochs")
                    return stopped_early
                ctx.barrier()
        return False

    def _begin_epoch(self, run: _Fit, epoch: int, planned: int) -> None:
        """Seeds the epoch (exact resume) and tells the sampler and the dataset which it is."""
        seed_all(self.cfg.seed * 1000 + epoch, deterministic=self.cfg.deterministic)
        if isinstance(run.loader.sampler, DistributedSampler):
            run.loader.sampler.set_epoch(epoch)
        # datasets whose sampling changes over the run (a mosaic switched off
        # for the last epochs) hear the epoch the same way
        if callable(getattr(self.train_set, "set_epoch", None)):
            self.train_set.set_epoch(epoch, planned)  # type: ignore[attr-defined]

    def _epoch(self, run: _Fit, epoch: int, planned: int, bar: Any) -> dict[str, Any]:
        """Trains and validates epoch `epoch` of `planned`, keeps its weights when they are
        the best so far, writes its checkpoint; returns its row of `results.csv`."""
        ctx, task, state = self.ctx, self.task, run.state
        self._begin_epoch(run, epoch, planned)
        start = run.budget.start_epoch()
        images = len(self.train_set)  # type: ignore[arg-type]
        bar_id = bar.add_task(f"epoch {epoch + 1}/{planned}", total=images, info="")
        kept = (
            f"{self.run_dir / CHECKPOINT_NAME} keeps epoch {state.epoch}"
            if self.run_dir and state.epoch
            else "no epoch was finished"
        )
        advice = f"{kept}; try a lower --lr (now {self.cfg.lr:g}) or --clip-grad"
        losses, seen = self._train_epoch(run, bar, bar_id, watch=_LossWatch(state, epoch, advice))
        train_time = time.perf_counter() - start
        bar.remove_task(bar_id)
        metrics, extra = self._validate(run, bar)
        # rank 0's verdict, so every rank stops together
        why = ctx.broadcast(_not_finite(run.eval_model, metrics, task.scores.val_loss))
        if why:  # before anything of this epoch is saved
            raise RecogError(f"training diverged at epoch {epoch + 1}: {why}; {advice}")
        seconds = time.perf_counter() - start
        val_seconds = time.perf_counter() - start - train_time
        row = {
            "epoch": epoch + 1,
            "lr": run.optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "train_images_per_second": ctx.world_size * seen / max(train_time, 1e-9),
            **{f"train_{k}": v for k, v in losses.items()},
            **flat_metrics(metrics),
            **extra,
        }
        run.budget.end_epoch(seconds, val_seconds)
        state.epoch = epoch + 1
        self._keep_best(run, epoch, metrics, extra)
        self._save(run, row)
        return row

    def _validate(self, run: _Fit, bar: Any) -> tuple[dict[str, Any], dict[str, float]]:
        """The epoch's validation metrics and the objective's columns."""
        val_id = bar.add_task("  validate", total=len(self.val_set), info="")  # type: ignore[arg-type]
        # full precision (evaluate): the best epoch is picked on the numbers the
        # run reports (mask_rcnn, bf16 on CPU: mask_map 0.81 under autocast vs
        # 0.79 in float32 for the same weights)
        acc = evaluate(
            run.eval_model,
            self.task,
            self.val_loader(),
            self.ctx,
            on_batch=lambda n, i=val_id: bar.advance(i, n),
        )
        bar.remove_task(val_id)
        metrics = acc.compute()
        extra = self.objective.validate(run.eval_model, self.task, self.val_loader(), self.ctx)
        return metrics, extra

    def _keep_best(
        self, run: _Fit, epoch: int, metrics: dict[str, Any], extra: dict[str, float]
    ) -> None:
        """Counts the epoch toward early stopping, or saves its weights as the best so far."""
        state = run.state
        score = float({**metrics, **extra}.get(run.selected, -math.inf))
        if score <= state.best:
            state.bad_epochs += 1
            return
        state.best, state.best_epoch = score, epoch + 1
        state.best_metrics, state.best_extra = metrics, extra
        state.bad_epochs = 0
        if self.run_dir:
            rio.save_weights(
                self.run_dir / WEIGHTS_NAME, run.eval_model.state_dict(), self.weights_metadata
            )

    def _save(self, run: _Fit, row: dict[str, Any]) -> None:
        """Appends the epoch's row to `results.csv` and writes `last.ckpt` (rank 0 alone)."""
        if not self.run_dir:
            run.table.rows.append(row)
            return
        run.table.append(row)
        saved = {name: part.state_dict() for name, part in run.parts().items()}
        saved |= {"state": _counters(run.state, run.budget), "rng": ckpt.rng_state()}
        rio.save_checkpoint(
            self.run_dir / CHECKPOINT_NAME, saved | {"format_version": rio.FORMAT_VERSION}
        )

    def _result(self, run: _Fit, stopped_early: bool) -> FitResult:
        """The best epoch's weights, in memory too, and what the run did."""
        state, ctx = run.state, self.ctx
        if state.best_epoch < 0:
            raise RecogError(f"training ran no epoch (epochs={self.cfg.epochs})")
        best = run.eval_model
        if self.ckpt_dir is not None and (self.ckpt_dir / WEIGHTS_NAME).is_file():
            ctx.barrier()
            best.load_state_dict(rio.load_weights(self.ckpt_dir / WEIGHTS_NAME))
        if best is not self.model:
            self.model.load_state_dict(best.state_dict())
        return FitResult(
            metrics=state.best_metrics,
            best_epoch=state.best_epoch,
            epochs_run=state.epoch,
            train_seconds=run.budget.spent,
            stopped_early=stopped_early,
            history=run.table.rows,
            objective_metrics=state.best_extra,
            steps=int(run.scheduler.last_epoch),  # LambdaLR counts the optimizer steps taken
        )

    def _train_epoch(
        self, run: _Fit, bar: Any, bar_id: Any, *, watch: _LossWatch
    ) -> tuple[dict[str, float], int]:
        """One epoch; a loss that is not finite or has exploded stops the run (`watch`), and
        the budget may stop it early (`Budget.over`)."""
        cfg, ctx = self.cfg, self.ctx
        optimizer, scheduler, scaler, ema = run.optimizer, run.scheduler, run.scaler, run.ema
        loader, model = run.loader, run.model
        # each step's loss is checked one step later, so the device is never waited for
        pending: tuple[int, torch.Tensor] | None = None
        run.net.train()
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
                parts = self.objective.loss(self.task, run.net, model, batch)
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
            # under a time budget an epoch's training stops where its validation still fits;
            # a `--steps` budget stops at its step, inside the last epoch.  Only at an
            # optimizer step, and the same on every rank (rank 0's clock)
            if run.budget.bounded and (step + 1) % cfg.accumulate == 0 and step < last:
                if ctx.broadcast(run.budget.over(scheduler.last_epoch)):
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
