"""The first training batch, drawn again as the loop drew it, for the report's picture.

Every epoch re-seeds all RNGs from (seed, epoch) and the sampler and the
dataset hear the epoch (`Trainer.fit`), so epoch 1's first batch can be
rebuilt after training without the loop keeping it: the same seed, sampler
epoch and `set_epoch(0, epochs)` (the mosaic on) give the same images through
the same train transforms.
"""

from __future__ import annotations

from torch.utils.data import DistributedSampler

from recog.engine.trainer import Trainer, seed_all
from recog.types import Batch


def first_train_batch(trainer: Trainer) -> Batch:
    """Epoch 1's first training batch (on the CPU, before the device and the loss)."""
    cfg = trainer.cfg
    seed_all(cfg.seed * 1000, deterministic=False)
    loader = trainer.train_loader()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(0)
    if callable(getattr(trainer.train_set, "set_epoch", None)):
        trainer.train_set.set_epoch(0, int(cfg.epochs))  # type: ignore[attr-defined]
    return next(iter(loader))
