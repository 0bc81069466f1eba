"""One evaluation pass, task-agnostic: predictions -> the task's accumulator.

Under DDP every rank evaluates its own shard (no padding, so no image is
counted twice) and the accumulators are gathered and merged on every rank,
so all ranks agree on the metrics that drive checkpointing and early stop.

`perturb` (an attack, `recog.robust`) turns each batch's images into the float
[0, 1] images the model is then measured on; it runs with gradients enabled,
the predictions after it in inference mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import Sampler

from recog.engine.distributed import DistContext
from recog.metrics.base import Accumulator
from recog.tasks.base import Task
from recog.types import Batch, Prediction


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: a disjoint, unpadded shard per rank."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def evaluate(
    model: nn.Module,
    task: Task,
    loader: Iterable[Batch],
    ctx: DistContext,
    *,
    on_batch: Callable[[int], None] | None = None,
    perturb: Callable[[Batch], torch.Tensor] | None = None,
    select: Callable[[list[Prediction]], list[Prediction]] | None = None,
) -> Accumulator:
    """Run `task.predict` over `loader` in full precision (whatever training used), as
    `recog val`, predict and the server do; returns the (rank-merged) accumulator."""
    was_training = model.training
    model.eval()
    acc = task.metrics()
    for batch in loader:
        images = batch.images.to(ctx.device, non_blocking=True).contiguous(
            memory_format=torch.channels_last
        )
        if perturb is not None:
            images = perturb(Batch(images, batch.targets, batch.truth, batch.meta).to(ctx.device))
            model.eval()
        with torch.inference_mode():
            predictions = task.predict(model, images, batch.meta)
        if select is not None:  # what `predict` with the same options would keep
            predictions = select(predictions)
        acc.update(predictions, batch.truth)
        if on_batch is not None:
            on_batch(len(batch))
    model.train(was_training)
    if ctx.enabled:
        parts = ctx.gather(acc)
        acc = parts[0]
        for other in parts[1:]:
            acc.merge(other)
    return acc
