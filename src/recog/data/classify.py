"""Classification data: transforms, the Dataset with its decode cache, and the loaders.

Loaders: `load_classification` (train and val) and `load_eval_dataset` tie
the sources (`recog.data.formats.class_folders`), decoding and caching
(`ClassificationDataset`, `materialize`) and transforms together;
`data_defaults` says what a built-in dataset needs.

Transforms are torchvision.transforms.v2 on uint8 tensors.  Normalization is
not done here: the task normalizes on the device, so the loader ships compact
uint8 images.  All randomness comes from torch's global RNG, which the engine
seeds per epoch.

The cache: with it on, each image is decoded once (two threads, with a
progress bar) and resized so its shorter side is a little above what the
transforms need; corrupt files are found there.  With it off, a cheap Pillow
check at build time finds unreadable files and decoding happens per item.
Corrupt files are skipped and listed, or with `strict` raise at the first one.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from recog.console import progress_bar, warn
from recog.data.formats.class_folders import Listing, list_eval, list_splits
from recog.data.images import read_image, unreadable, warn_skipped
from recog.data.splits import DataSplits
from recog.errors import RecogError
from recog.types import Sample, Target, TaskName

# ----------------------------------------------------------------- transforms
# augment level -> (minimum crop scale, colour jitter strength)
_LEVELS = {"light": (0.6, 0.0), "standard": (0.25, 0.3), "strong": (0.08, 0.4)}


def eval_transform(*, img_size: int, crop_pct: float = 0.875) -> v2.Transform:
    """Resize the shorter side to img_size / crop_pct, then centre-crop img_size."""
    return v2.Compose(
        [v2.Resize(round(img_size / crop_pct), antialias=True), v2.CenterCrop(img_size)]
    )


def train_transform(
    *,
    img_size: int,
    augment: str = "standard",
    auto_augment: str = "none",
    hflip: float = 0.5,
    min_scale: float | None = None,
) -> v2.Transform:
    if augment == "none":
        steps: list[v2.Transform] = [v2.Resize(img_size, antialias=True), v2.CenterCrop(img_size)]
    else:
        scale, jitter = _LEVELS[augment]
        steps = [v2.RandomResizedCrop(img_size, scale=(min_scale or scale, 1.0), antialias=True)]
        if hflip > 0:
            steps.append(v2.RandomHorizontalFlip(hflip))
        if jitter:
            steps.append(
                v2.ColorJitter(jitter, jitter, jitter, 0.1 if augment == "strong" else 0.0)
            )
    if auto_augment == "randaugment":
        steps.append(v2.RandAugment())
    elif auto_augment == "trivialaugment":
        steps.append(v2.TrivialAugmentWide())
    return v2.Compose(steps)


def batch_mix(
    *, mixup: float, cutmix: float, num_classes: int
) -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """MixUp and/or CutMix over a batch: (images, labels (B,)) -> (images, soft labels (B, C))."""
    choices: list[v2.Transform] = []
    if mixup > 0:
        choices.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        choices.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not choices:
        return None
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)


def balanced_sampler(
    labels: list[int], *, num_samples: int | None = None, generator: torch.Generator | None = None
) -> torch.utils.data.WeightedRandomSampler:
    """Draws every class equally often (weights 1 / class frequency), with replacement."""
    counts = torch.bincount(torch.tensor(labels))
    weights = 1.0 / counts[torch.tensor(labels)].double()
    return torch.utils.data.WeightedRandomSampler(
        weights, num_samples or len(labels), replacement=True, generator=generator
    )


# -------------------------------------------------------------------- dataset
CACHE_AUTO_LIMIT = 20_000


def _cache_size(img_size: int, crop_pct: float) -> int:
    # 15% above the eval resize leaves room for random-resized crops.
    return round(img_size / crop_pct * 1.15)


def _shrink(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    return TF.resize(image, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)


class ClassificationDataset(Dataset):
    """Samples of (transformed uint8 image, class index)."""

    def __init__(
        self,
        items: list,
        labels: list[int],
        transform: Callable[[torch.Tensor], torch.Tensor],
        sizes: list[tuple[int, int]] | None = None,
        names: list[str] | None = None,
    ) -> None:
        self.items, self.labels, self.transform = items, labels, transform
        self.sizes, self.names = sizes, names

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        item = self.items[index]
        if isinstance(item, torch.Tensor):
            image = item
            orig = self.sizes[index] if self.sizes else tuple(item.shape[-2:])
        else:
            image = read_image(item)
            orig = tuple(image.shape[-2:])
        return Sample(
            image=self.transform(image),
            target=Target(labels=torch.tensor(self.labels[index], dtype=torch.int64)),
            path=self.names[index] if self.names is not None else str(item),
            orig_size=(int(orig[0]), int(orig[1])),
        )


def materialize(
    listing: Listing, *, cache: bool, img_size: int, crop_pct: float, strict: bool, desc: str
) -> tuple[Listing, list[tuple[int, int]] | None, list[tuple[str, str]]]:
    """Decode (cache) or check every item.

    Returns the usable items (decoded tensors with the cache, else paths) with
    their labels and names, their original (H, W) sizes (cache only), and the
    skipped (path, reason) pairs.
    """
    skipped: list[tuple[str, str]] = []
    names = [listing.name(i) for i in range(len(listing.items))]
    paths = [i for i in listing.items if not isinstance(i, torch.Tensor)]
    if not paths:  # in-memory source (digits)
        if not cache:
            return Listing(listing.items, listing.labels, names=names), None, []
        side = _cache_size(img_size, crop_pct)
        return (
            Listing([_shrink(i, side) for i in listing.items], listing.labels, names=names),
            [tuple(i.shape[-2:]) for i in listing.items],
            [],
        )

    def load(path: Path) -> tuple[torch.Tensor | None, tuple[int, int] | None, str | None]:
        if not cache:
            return None, None, unreadable(path)
        try:
            image = read_image(path)
        except RecogError as exc:
            return None, None, str(exc).removeprefix(f"{path}: ")
        return _shrink(image, _cache_size(img_size, crop_pct)), tuple(image.shape[-2:]), None

    results = []
    with progress_bar(unit="img") as bar, ThreadPoolExecutor(max_workers=2) as pool:
        task = bar.add_task(f"{'decode' if cache else 'check'} {desc}", total=len(paths), info="")
        for result in pool.map(load, listing.items):
            results.append(result)
            bar.advance(task)
    items, labels, kept_names, sizes = [], [], [], []
    for path, label, name, (image, size, problem) in zip(
        listing.items, listing.labels, names, results, strict=True
    ):
        if problem is not None:
            if strict:
                raise RecogError(
                    f"{path}: {problem} (--strict stops at the first unreadable image)"
                )
            skipped.append((str(path), problem))
            continue
        items.append(image if cache else path)
        labels.append(label)
        kept_names.append(name)
        sizes.append(size)
    warn_skipped(skipped)
    return Listing(items, labels, names=kept_names), (sizes if cache else None), skipped


# -------------------------------------------------------------------- loaders
@dataclass
class DataDefaults:
    """What a built-in dataset is known to need; None: the recipe's rule decides."""

    img_size: int | None = None
    hflip: float | None = None
    crop_pct: float = 0.875
    min_scale: float | None = None  # random-resized-crop floor; None: the augment level's


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


def _check_emptied(
    listed: Listing,
    kept: Listing,
    names: list[str],
    spec: str,
    *,
    given: bool,
) -> None:
    """A class whose every training image was unreadable: an error naming it, or (when the
    class list was given, `--classes` or a run's classes) a warning, the class kept."""
    emptied = sorted(set(listed.labels) - set(kept.labels))
    for label in emptied:
        count = listed.labels.count(label)
        first = next(listed.name(i) for i, lab in enumerate(listed.labels) if lab == label)
        line = (
            f"{spec}: class {names[label]!r} has no readable training images "
            f"(all {count} unreadable, e.g. {first})"
        )
        if not given:
            raise RecogError(f"{line}; fix or remove them, or pass --classes to keep the class")
        warn(f"{line}; kept because the class list was given")


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
    group_by: str = "",
) -> DataSplits:
    """Train and val datasets for `spec` (digits, a split root, class folders or a CSV).

    `class_names` fixes the label order (a run's classes); a class in the data
    that is not among them is an error.
    """
    if not 0.0 < val_split < 1.0:
        raise RecogError(f"--val-split must be between 0 and 1, not {val_split}")
    train_list, val_list, names, name = list_splits(
        spec, val_split=val_split, seed=seed, group_by=group_by
    )
    if class_names is not None:  # a run's class order, e.g. to fine-tune on new data
        train_list = _reorder(train_list, names, class_names, spec)
        val_list = _reorder(val_list, names, class_names, spec)
        names = list(class_names)
    use_cache = _use_cache(cache, len(train_list.items) + len(val_list.items))
    kw = dict(cache=use_cache, img_size=img_size, crop_pct=crop_pct, strict=strict)
    tr, tr_sizes, tr_skipped = materialize(train_list, desc="train", **kw)
    va, va_sizes, va_skipped = materialize(val_list, desc="val", **kw)
    _check_emptied(train_list, tr, names, spec, given=class_names is not None)
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
