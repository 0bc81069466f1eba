"""Data: sources, decoding, datasets and transforms for every task.

Classification lives in `class_folders`, `classify_dataset`, `augment`,
`source`; detection in `detection_formats` (COCO, YOLO, VOC) and
`detection_dataset`; `shapes` renders the built-in scenes; `images` decodes.
"""

from recog.data.augment import balanced_sampler, batch_mix, eval_transform, train_transform
from recog.data.images import find_images, read_image
from recog.data.inspect import check_dataset
from recog.data.source import (
    DataDefaults,
    DataSplits,
    data_defaults,
    load_classification,
    load_eval_dataset,
)

__all__ = [
    "DataDefaults",
    "DataSplits",
    "balanced_sampler",
    "batch_mix",
    "check_dataset",
    "data_defaults",
    "eval_transform",
    "find_images",
    "load_classification",
    "load_eval_dataset",
    "read_image",
    "train_transform",
]
