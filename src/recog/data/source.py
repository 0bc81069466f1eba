"""The classification data door: `load_classification`, `load_eval_dataset`, defaults.

Ties the sources (`class_folders`), decoding and caching
(`classify_dataset`) and transforms (`augment`) into train/val datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch.utils.data import Dataset

from recog.data.augment import eval_transform, train_transform
from recog.data.class_folders import list_eval, list_splits
from recog.data.classify_dataset import CACHE_AUTO_LIMIT, ClassificationDataset, materialize
from recog.errors import RecogError
from recog.types import TaskName


@dataclass
class DataDefaults:
    img_size: int | None = None  # None: the model's default
    hflip: float = 0.5
    crop_pct: float = 0.875
    min_scale: float | None = None  # random-resized-crop floor; None: the augment level's


@dataclass
class DataSplits:
    train: Dataset
    val: Dataset
    class_names: list[str]
    name: str
    task: TaskName
    train_labels: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def data_defaults(spec: str) -> DataDefaults:
    if spec == "digits":
        # 8x8 digits: upscale to 32 px, never mirror (a mirrored 2 is no digit), crop gently.
        return DataDefaults(img_size=32, hflip=0.0, crop_pct=1.0, min_scale=0.6)
    if spec.split(":")[0] == "shapes":
        return DataDefaults(img_size=128, hflip=0.5, crop_pct=1.0)
    return DataDefaults()


def _use_cache(cache: str, count: int) -> bool:
    return cache == "on" or (cache == "auto" and count <= CACHE_AUTO_LIMIT)


def load_classification(
    spec: str,
    *,
    img_size: int,
    val_split: float = 0.2,
    seed: int = 0,
    augment: str = "standard",
    auto_augment: str = "none",
    hflip: float = 0.5,
    crop_pct: float = 0.875,
    cache: str = "auto",
    strict: bool = False,
    class_names: list[str] | None = None,
) -> DataSplits:
    if not 0.0 < val_split < 1.0:
        raise RecogError(f"--val-split must be between 0 and 1, not {val_split}")
    train_list, val_list, names, name = list_splits(spec, val_split=val_split, seed=seed)
    use_cache = _use_cache(cache, len(train_list.items) + len(val_list.items))
    kw = dict(cache=use_cache, img_size=img_size, crop_pct=crop_pct, strict=strict)
    tr_items, tr_labels, tr_sizes, tr_skipped = materialize(train_list, desc="train", **kw)
    va_items, va_labels, va_sizes, va_skipped = materialize(val_list, desc="val", **kw)
    if len(set(tr_labels)) < 2:
        raise RecogError(f"{spec}: training data needs images of at least 2 classes")
    if not va_items:
        raise RecogError(f"{spec}: no validation images (add a val/ folder or raise --val-split)")
    defaults = data_defaults(spec)
    train = ClassificationDataset(
        tr_items,
        tr_labels,
        train_transform(
            img_size=img_size,
            augment=augment,
            auto_augment=auto_augment,
            hflip=hflip,
            min_scale=defaults.min_scale,
        ),
        tr_sizes,
    )
    val = ClassificationDataset(
        va_items, va_labels, eval_transform(img_size=img_size, crop_pct=crop_pct), va_sizes
    )
    return DataSplits(
        train, val, names, name, TaskName.CLASSIFY, tr_labels, tr_skipped + va_skipped
    )


def load_eval_dataset(
    spec: str,
    *,
    class_names: list[str],
    img_size: int,
    crop_pct: float,
    cache: str = "auto",
    strict: bool = False,
) -> Dataset:
    listing = list_eval(spec, class_names=class_names)
    items, labels, sizes, _ = materialize(
        listing,
        cache=_use_cache(cache, len(listing.items)),
        img_size=img_size,
        crop_pct=crop_pct,
        strict=strict,
        desc="eval",
    )
    if not items:
        raise RecogError(f"{spec}: no readable images to evaluate")
    return ClassificationDataset(
        items, labels, eval_transform(img_size=img_size, crop_pct=crop_pct), sizes
    )
