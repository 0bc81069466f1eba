"""Images read and prepared by parallel workers, a batch at a time, in input order.

A torch DataLoader over the list of inputs: `num_workers` processes each read
(`recog.batch.sources.read_input`, the one door with its limits), decode and
`Task.prepare` whole batches while the main process runs the model, so the model
never waits on JPEG decoding.  Processes, not threads: decoding and resizing hold
the GIL for part of their time, and the main thread's own Python (rows, the
writer) then stalls them (see `bench/predict_stream.py`).  An input that cannot
be read comes back as its error line, not as an exception, so one bad file in a
million costs one row, not the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from recog.batch.sources import read_input
from recog.errors import RecogError

#: one input: (its name, (prepared image, meta) or None, its error line or None)
Item = tuple[str, Any, str | None]


class PreparedImages(Dataset):
    def __init__(self, names: Sequence[str], prepare: Callable[[torch.Tensor], Any]):
        self.names = list(names)
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Item:
        name = self.names[index]
        try:
            return name, self.prepare(read_input(name)), None
        except RecogError as exc:
            return name, None, str(exc)


def _as_list(items: list[Item]) -> list[Item]:
    return items


def prepared_batches(
    names: Sequence[str], prepare: Callable[[torch.Tensor], Any], *,
    batch_size: int, num_workers: int,
) -> Iterator[list[Item]]:  # fmt: skip
    """Batches of `batch_size` inputs (the last shorter), in order."""
    loader = DataLoader(
        PreparedImages(names, prepare),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_list,
        # two batches ahead per worker (the default): enough to hide a slow file, and
        # memory stays at (workers x 2) batches whatever the number of images
        prefetch_factor=2 if num_workers else None,
    )
    yield from loader
