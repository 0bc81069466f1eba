"""The classification data door: `load_classification`, `load_eval_dataset`, defaults.

Ties the sources (`class_folders`), decoding and caching
(`classify_dataset`) and transforms (`augment`) into train/val datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from torch.utils.data import Dataset

from recog.data.augment import eval_transform, train_transform
from recog.data.class_folders import Listing, list_eval, list_splits
from recog.data.classify_dataset import CACHE_AUTO_LIMIT, ClassificationDataset, materialize
from recog.errors import RecogError
from recog.types import TaskName


@dataclass
class DataDefaults:
    """What a built-in dataset is known to need; None: the recipe's rule decides."""

    img_size: int | None = None
    hflip: float | None = None
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


def _reorder(listing: Listing, found: list[str], class_names: list[str], spec: str) -> Listing:
    """Labels re-indexed from the classes found in the data to a given class list."""
    unknown = [n for n in found if n not in class_names]
    if unknown:
        raise RecogError(
            f"{spec}: class {unknown[0]!r} is not one of the given classes ({', '.join(class_names)})"
        )
    index = [class_names.index(n) for n in found]
    return replace(listing, labels=[index[label] for label in listing.labels])


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
    min_scale: float | None = None,
    crop_pct: float = 0.875,
    cache: str = "auto",
    strict: bool = False,
    class_names: list[str] | None = None,
) -> DataSplits:
    """Train and val datasets for `spec` (digits, a split root, class folders or a CSV).

    `class_names` fixes the label order (a run's classes); a class in the data
    that is not among them is an error.
    """
    if not 0.0 < val_split < 1.0:
        raise RecogError(f"--val-split must be between 0 and 1, not {val_split}")
    train_list, val_list, names, name = list_splits(spec, val_split=val_split, seed=seed)
    if class_names is not None:  # a run's class order, e.g. to fine-tune on new data
        train_list = _reorder(train_list, names, class_names, spec)
        val_list = _reorder(val_list, names, class_names, spec)
        names = list(class_names)
    use_cache = _use_cache(cache, len(train_list.items) + len(val_list.items))
    kw = dict(cache=use_cache, img_size=img_size, crop_pct=crop_pct, strict=strict)
    tr, tr_sizes, tr_skipped = materialize(train_list, desc="train", **kw)
    va, va_sizes, va_skipped = materialize(val_list, desc="val", **kw)
    if len(set(tr.labels)) < 2:
        raise RecogError(f"{spec}: training data needs images of at least 2 classes")
    if not va.items:
        raise RecogError(f"{spec}: no validation images (add a val/ folder or raise --val-split)")
    train = ClassificationDataset(
        tr.items,
        tr.labels,
        train_transform(
            img_size=img_size,
            augment=augment,
            auto_augment=auto_augment,
            hflip=hflip,
            min_scale=min_scale,
        ),
        tr_sizes,
        tr.names,
    )
    val = ClassificationDataset(
        va.items,
        va.labels,
        eval_transform(img_size=img_size, crop_pct=crop_pct),
        va_sizes,
        va.names,
    )
    return DataSplits(
        train, val, names, name, TaskName.CLASSIFY, tr.labels, tr_skipped + va_skipped
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
    """Data to evaluate a run on: the val/ (or test/) split if there is one, else everything."""
    listing = list_eval(spec, class_names=class_names)
    kept, sizes, _ = materialize(
        listing,
        cache=_use_cache(cache, len(listing.items)),
        img_size=img_size,
        crop_pct=crop_pct,
        strict=strict,
        desc="eval",
    )
    if not kept.items:
        raise RecogError(f"{spec}: no readable images to evaluate")
    return ClassificationDataset(
        kept.items,
        kept.labels,
        eval_transform(img_size=img_size, crop_pct=crop_pct),
        sizes,
        kept.names,
    )
