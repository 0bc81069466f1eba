"""Images read and prepared by parallel workers, a batch at a time, in input order.

A torch DataLoader over the list of inputs: `num_workers` processes each read
(`recog.batch.sources.read_decoded_input`, the one door with its limits), decode and
`Task.prepare` whole batches while the main process runs the model, so the model
never waits on JPEG decoding; the DataLoader brings the prefetching, the order
and the shared-memory hand-over.  An input that cannot
be read comes back as its error line, not as an exception, so one bad file in a
million costs one row, not the job.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from recog.api.images import same_size_runs
from recog.batch.sources import read_decoded_input
from recog.errors import RecogError

if TYPE_CHECKING:
    from recog.tasks.base import Task

#: one input: (its name, (prepared image, meta) or None, its error line or None)
Item = tuple[str, Any, str | None]


class PreparedImages(Dataset):
    """Each input read no larger than `task.decode_size` asks, then `task.prepare`d."""

    def __init__(self, names: Sequence[str], task: Task):
        self.names = list(names)
        self.task = task

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Item:
        name = self.names[index]
        try:
            decoded = read_decoded_input(name, self.task.decode_size)
            full_size = decoded.full_size if decoded.reduced else None
            return name, self.task.prepare(decoded.pixels, full_size), None
        except RecogError as exc:
            return name, None, str(exc)


@dataclass
class PreparedBatch:
    """One batch of inputs: every name (in order), the error line of each that failed
    (None where it was read), and the read ones stacked in runs of one size:
    (their positions in `names`, (n, 3, H, W) uint8, their metas)."""

    names: list[str]
    errors: list[str | None]
    groups: list[tuple[list[int], torch.Tensor, list[Any]]]
    #: each group's predictions when they were already made (the planner's timed pass)
    predictions: list[list[Any]] | None = None


def collate(items: list[Item]) -> PreparedBatch:
    """Stacked in the worker: one shared-memory tensor per run crosses to the main
    process, not one per image (per-image tensors cost more than decoding small images)."""
    ready = [
        (prepared[0], (i, prepared[1]))
        for i, (_, prepared, _) in enumerate(items)
        if prepared is not None
    ]
    groups = [
        (
            [i for _, (i, _) in run],
            torch.stack([image for image, _ in run]),
            [m for _, (_, m) in run],
        )
        for run in same_size_runs(ready)
    ]
    return PreparedBatch([name for name, _, _ in items], [e for _, _, e in items], groups)


def prepared_batches(
    names: Sequence[str], task: Task, *, batch_size: int, num_workers: int
) -> Iterator[PreparedBatch]:
    """Batches of `batch_size` inputs (the last shorter), in order."""
    loader = DataLoader(
        PreparedImages(names, task),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        # two batches ahead per worker (the default): enough to hide a slow file, and
        # memory stays at (workers x 2) batches whatever the number of images
        prefetch_factor=2 if num_workers else None,
    )
    yield from loader
