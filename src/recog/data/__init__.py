"""Data: source formats, the image door, splits, and the datasets and transforms of each task.

`formats/` reads every source format and answers what a path holds
(`detect_format`); `images` is the one door user images are read through;
`splits` the one seeded split; `classify`, `detect`, `segment` the datasets,
transforms and loaders per task; `check` the `recog data check|stats`
reports; `survey` the facts the recipe chooses from.
"""

from recog.data.check import check_dataset
from recog.data.classify import (
    DataDefaults,
    balanced_sampler,
    batch_mix,
    data_defaults,
    eval_transform,
    load_classification,
    load_eval_dataset,
    train_transform,
)
from recog.data.images import find_images, image_from_bytes, read_image
from recog.data.splits import DataSplits

__all__ = [
    "DataDefaults",
    "DataSplits",
    "balanced_sampler",
    "batch_mix",
    "check_dataset",
    "data_defaults",
    "eval_transform",
    "find_images",
    "image_from_bytes",
    "load_classification",
    "load_eval_dataset",
    "read_image",
    "train_transform",
]
