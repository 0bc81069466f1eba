"""A timing probe: seconds per optimizer step and per validation pass, on real batches.

The recipe caps a run's budget to what fits this machine (`recipe.resolve_budget`);
that needs the real cost of a step with this model, batch, input size, data
pipeline (decode, augmentation, mosaic) and precision.  The probe trains a
copy of the model for a few steps, so the run itself starts from the same
weights and RNG streams as it would without the probe (the engine re-seeds
every epoch).
"""

from __future__ import annotations

import copy
import itertools
import time
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from recog.config import TrainConfig
from recog.engine.distributed import DistContext
from recog.engine.objective import TaskObjective, TrainingObjective
from recog.engine.optim import amp_dtype, build_optimizer
from recog.recipe import Probe
from recog.tasks.base import Task

#: timed steps after one untimed warm-up step (first-call allocations, oneDNN kernel choice)
PROBE_STEPS = 3


def probe(
    cfg: TrainConfig,
    task: Task,
    model: torch.nn.Module,
    train: Dataset,
    val: Dataset,
    ctx: DistContext,
    objective: TrainingObjective | None = None,
) -> Probe:
    """Seconds per step of `objective` (default: the task's loss) and per validation; with
    `--amp auto` on a CPU that computes bf16 natively, the steps under bf16 as well."""
    objective = objective or TaskObjective()
    net = copy.deepcopy(model).to(ctx.device, memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, net)
    batch_size = int(cfg.batch_size)
    loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        num_workers=cfg.workers,
        collate_fn=task.collate,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    rng = torch.get_rng_state()
    net.train()
    step = _step_seconds(task, net, optimizer, loader, ctx, objective,
                         amp_dtype(ctx.device, cfg.amp))  # fmt: skip
    bf16 = None
    if cfg.amp == "auto" and ctx.device.type == "cpu":
        native = amp_dtype(ctx.device, "on")  # None: no native bf16 on this CPU
        if native is not None:
            bf16 = _step_seconds(task, net, optimizer, loader, ctx, objective, native)
    val_seconds = _validation_seconds(task, net, val, batch_size, ctx, objective)
    torch.set_rng_state(rng)
    return Probe(step_seconds=step * cfg.accumulate, val_seconds=val_seconds,
                 bf16_step_seconds=None if bf16 is None else bf16 * cfg.accumulate)  # fmt: skip


def _step_seconds(task: Task, net: torch.nn.Module, optimizer: Any,
                  loader: DataLoader, ctx: DistContext, objective: TrainingObjective,
                  dtype: torch.dtype | None) -> float:  # fmt: skip
    """The median seconds of `PROBE_STEPS` training steps (after an untimed one) at `dtype`."""
    seconds: list[float] = []
    batches = itertools.cycle(loader) if len(loader) < PROBE_STEPS + 1 else iter(loader)
    start = time.perf_counter()
    for i, batch in zip(range(PROBE_STEPS + 1), batches, strict=False):
        batch = batch.to(ctx.device)
        batch.images = batch.images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(
            ctx.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            loss = objective.loss(task, net, net, batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        if i > 0:
            seconds.append(now - start)
        start = now
    return sorted(seconds)[len(seconds) // 2] if seconds else 0.0


def _validation_seconds(task: Task, net: torch.nn.Module, val: Dataset, batch_size: int,
                        ctx: DistContext, objective: TrainingObjective) -> float:  # fmt: skip
    # validation: one batch of the validation loader's size, scaled to the split
    net.eval()
    n_val = len(val)  # type: ignore[arg-type]
    val_batch = min(n_val, 2 * batch_size)
    samples = [val[i] for i in range(val_batch)]
    start = time.perf_counter()
    b = task.collate(samples)
    with torch.inference_mode():
        task.predict(net, b.images.to(ctx.device), b.meta)
    per_image = (time.perf_counter() - start) / max(1, val_batch)
    # what the objective adds to each validation (adversarial training: PGD on every image),
    # timed on the same batch: a 15-minute plan must not leave it out (digits, PGD-10: +10 s
    # an epoch on 45 s of training)
    start = time.perf_counter()
    objective.validate(net, task, [b], DistContext(device=ctx.device))
    per_image += (time.perf_counter() - start) / max(1, val_batch)
    return per_image * n_val
