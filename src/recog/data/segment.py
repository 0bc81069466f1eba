"""Segmentation data: mask-aware augmentation, the datasets and the loaders (one job: every source ends in the same two datasets).

Semantic samples stay at the image's own resolution: training takes a random
`img_size` crop (padded with ignore where the image is smaller) after
flips, scale, rotation and colour jitter (transforms.v2 on
`tv_tensors.Mask`, so masks move with their image, nearest-neighbour, and
are filled with 255 = ignore where the image is filled); validation yields
whole images, which the task predicts with a sliding window when they are
larger than `img_size`.  Colour jitter touches the image only.

Instance samples (Mask R-CNN) are letterboxed like detection samples; boxes
are recomputed from the augmented masks, so a rotated object keeps a tight
box.

Sources: the built-in `shapes` scenes (semantic: class 0 = background, k + 1
= shape k; instance: the shapes), image/mask folders
(`recog.data.formats.masks`), and COCO JSON with polygon or RLE segmentations
(`recog.data.formats.coco`), which semantic models read as class-id masks
(0 = background).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from recog.console import warn
from recog.data.detect import PAD_VALUE, letterbox, require_both
from recog.data.formats import NOT_SEGMENTATION, DataFormat, segmentation_format
from recog.data.formats.coco import (
    CocoImage,
    read_coco_image,
    read_coco_masks,
    semantic_mask,
    split_coco_masks,
)
from recog.data.formats.masks import (
    MaskDecoder,
    MaskPair,
    all_pairs,
    load_pair,
    resolve_classes,
    split_pairs,
)
from recog.data.formats.shapes import ShapesConfig, parse_shapes, render_scene
from recog.data.images import drop_unreadable
from recog.data.splits import DataSplits
from recog.errors import RecogError
from recog.types import IGNORE_INDEX, Sample, Target, TaskName

SHAPES_SEED, SHAPES_VAL_OFFSET = 1234, 1_000_000  # as detection: the same scenes
MIN_INSTANCE_PIXELS = 4
CACHE_BYTES = 2 * 1024**3  # decoded images and masks kept in memory per dataset


# ------------------------------------------------------------------ transforms
def semantic_train_transform(
    *,
    img_size: int,
    augment: str = "standard",
    hflip: float = 0.5,
    elastic: float = 0.0,
    min_scale: float | None = None,
) -> v2.Transform:
    """Mask-aware training pipeline ending in an `img_size` square crop.

    none: crop only; light: + flip; standard: + scale 0.75-1.25, rotation +-15 deg,
    colour jitter; strong: + vertical flip, any rotation, scale 0.5-1.5 (for
    micrographs and other images without an up); `min_scale` replaces the level's
    smallest scale (the range is [min_scale, 2 - min_scale]).  `elastic` adds an elastic
    deformation (Simard et al. 2003; the U-Net paper's augmentation for cells).
    """
    fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
    ops: list[v2.Transform] = []
    if augment != "none":
        ops.append(v2.RandomHorizontalFlip(hflip))
    if augment == "strong":
        ops.append(v2.RandomVerticalFlip(0.5))
    if augment in ("standard", "strong"):
        strong = augment == "strong"
        low = min_scale if min_scale is not None else (0.5 if strong else 0.75)
        ops.append(
            v2.RandomAffine(
                degrees=180.0 if strong else 15.0,
                scale=(low, max(1.0, 2.0 - low)),
                fill=fill,
            )
        )
    if elastic > 0:
        ops.append(v2.RandomApply([v2.ElasticTransform(alpha=40.0, sigma=6.0, fill=fill)], elastic))
    if augment in ("standard", "strong"):
        ops.append(v2.ColorJitter(0.3, 0.3, 0.3, 0.02))
    ops.append(v2.RandomCrop(img_size, pad_if_needed=True, fill=fill))
    return v2.Compose(ops)


def instance_train_transform(
    *, hflip: float = 0.5, augment: str = "standard", min_scale: float | None = None
) -> v2.Transform:
    if augment == "none":
        return v2.Identity()
    low = min_scale if min_scale is not None else (0.5 if augment == "strong" else 0.75)
    ops: list[v2.Transform] = [v2.RandomHorizontalFlip(hflip)]
    if augment != "light":
        ops += [
            v2.RandomAffine(
                degrees=0.0,
                translate=(0.1, 0.1),
                scale=(low, max(1.0, 2.0 - low)),
                fill={tv_tensors.Image: PAD_VALUE, tv_tensors.Mask: 0},
            ),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.02),
        ]
    return v2.Compose(ops)


# ------------------------------------------------------------------- datasets
@dataclass
class SemanticItem:
    image: torch.Tensor  # (3, H, W) uint8
    mask: torch.Tensor  # (H, W) uint8 class ids, 255 = ignore
    path: str


@dataclass
class InstanceItem:
    image: torch.Tensor  # (3, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    masks: torch.Tensor  # (N, H, W) bool
    path: str


class _Memo:
    """Keeps what `load` returned (decode or render once) until `max_bytes` are held.

    Small sets (shapes scenes, a few dozen micrographs) are decoded once; a large set
    of big photos fills the budget and the rest is read from disk every epoch.
    """

    def __init__(self, load: Callable[[int], Any], max_bytes: int) -> None:
        self.load, self.max_bytes, self.held, self.items = load, max_bytes, 0, {}

    def __call__(self, index: int) -> Any:
        if index in self.items:
            return self.items[index]
        item = self.load(index)
        size = sum(
            t.numel() * t.element_size() for t in vars(item).values() if isinstance(t, torch.Tensor)
        )
        if self.held + size <= self.max_bytes:
            self.items[index] = item
            self.held += size
        return item


class SemanticDataset(Dataset):
    """Samples: image (3, h, w) uint8, `target.mask` (h, w) int64; `orig_size` of the source."""

    def __init__(
        self, load: Callable[[int], SemanticItem], length: int, *, augment: Any = None
    ) -> None:
        self.load, self.length, self.augment = _Memo(load, CACHE_BYTES), length, augment

    def __len__(self) -> int:
        return self.length

    def mask(self, index: int) -> torch.Tensor:
        """Item `index`'s (H, W) class ids before augmentation (recog.data.label_stats)."""
        return self.load(index).mask

    def __getitem__(self, index: int) -> Sample:
        item = self.load(index)
        h, w = item.image.shape[-2:]
        image, mask = item.image, item.mask
        if self.augment is not None:
            image, mask = self.augment(tv_tensors.Image(image), tv_tensors.Mask(mask))
            image, mask = image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
        return Sample(
            image=image, target=Target(mask=mask.long()), path=item.path, orig_size=(h, w)
        )


class InstanceDataset(Dataset):
    """Letterboxed samples with boxes from masks; `meta["truth"]` in original pixels."""

    def __init__(
        self,
        load: Callable[[int], InstanceItem],
        length: int,
        *,
        img_size: int,
        augment: Any = None,
    ) -> None:
        self.load, self.length = _Memo(load, CACHE_BYTES), length
        self.img_size, self.augment = img_size, augment

    def __len__(self) -> int:
        return self.length

    def instances(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `index`'s masks (N, H, W) bool and labels (N,) before augmentation."""
        item = self.load(index)
        return item.masks, item.labels

    def __getitem__(self, index: int) -> Sample:
        item = self.load(index)
        h, w = item.image.shape[-2:]
        truth = instance_target(item.masks, item.labels)
        image, masks, labels = item.image, item.masks, item.labels
        if self.augment is not None and len(labels):
            image, masks = self.augment(
                tv_tensors.Image(image), tv_tensors.Mask(masks.to(torch.uint8))
            )
            image, masks = image.as_subclass(torch.Tensor), masks.as_subclass(torch.Tensor).bool()
        elif self.augment is not None:
            image = self.augment(tv_tensors.Image(image)).as_subclass(torch.Tensor)
        image, _, scale = letterbox(image, torch.zeros((0, 4)), self.img_size)
        masks = letterbox_masks(masks, scale, self.img_size)
        target = instance_target(masks, labels)
        return Sample(
            image=image,
            target=target,
            path=item.path,
            orig_size=(int(h), int(w)),
            meta={"scale": scale, "truth": truth},
        )


def letterbox_masks(masks: torch.Tensor, scale: float, size: int) -> torch.Tensor:
    """(N, H, W) bool -> (N, size, size) bool, scaled like `letterbox` scales the image."""
    n, h, w = masks.shape
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = torch.zeros((n, size, size), dtype=torch.bool)
    if n:
        resized = F.interpolate(masks[None].float(), size=(nh, nw), mode="nearest")[0] > 0.5
        out[:, :nh, :nw] = resized
    return out


def instance_target(masks: torch.Tensor, labels: torch.Tensor) -> Target:
    """Target with boxes (N, 4) xyxy pixel edges from the masks; empty masks dropped."""
    keep = (
        masks.flatten(1).sum(1) >= MIN_INSTANCE_PIXELS
        if len(masks)
        else torch.zeros(0, dtype=torch.bool)
    )
    masks, labels = masks[keep], labels[keep]
    boxes = masks_to_boxes(masks) if len(masks) else torch.zeros((0, 4))
    boxes[:, 2:] += 1  # masks_to_boxes gives the last pixel; edges end one further
    return Target(boxes=boxes.float(), labels=labels.long(), masks=masks.bool())


# -------------------------------------------------------------------- sources
class _ShapesSemantic:
    def __init__(self, offset: int, config: ShapesConfig) -> None:
        self.offset, self.config = offset, config

    def __call__(self, index: int) -> SemanticItem:
        scene = render_scene(self.offset + index, seed=SHAPES_SEED, config=self.config)
        return SemanticItem(
            scene.image, scene.mask.to(torch.uint8), f"shapes[{self.offset + index}]"
        )


class _ShapesInstance(_ShapesSemantic):
    def __call__(self, index: int) -> InstanceItem:  # type: ignore[override]
        scene = render_scene(self.offset + index, seed=SHAPES_SEED, config=self.config)
        return InstanceItem(
            scene.image, scene.labels, scene.masks, f"shapes[{self.offset + index}]"
        )


class _PairLoader:
    def __init__(self, pairs: list[MaskPair], decode: MaskDecoder) -> None:
        self.pairs, self.decode = pairs, decode

    def __call__(self, index: int) -> SemanticItem:
        pair = self.pairs[index]
        image, mask = load_pair(pair, self.decode)
        return SemanticItem(image, mask.to(torch.uint8), str(pair.image))


class _CocoLoader:
    """Masks from COCO polygons / RLE (`read_coco_image`), one image at a time."""

    def __init__(self, images: list[CocoImage], cat_index: dict[int, int], semantic: bool) -> None:
        self.images, self.cat_index, self.semantic = images, cat_index, semantic

    def __call__(self, index: int) -> SemanticItem | InstanceItem:
        info = self.images[index]
        image, masks, labels = read_coco_image(info, self.cat_index)
        if not self.semantic:
            return InstanceItem(image, labels, masks, str(info.path))
        return SemanticItem(image, semantic_mask(masks, labels), str(info.path))


# ---------------------------------------------------------------------- doors
def load_segmentation(
    spec: str,
    *,
    instance: bool,
    img_size: int,
    val_split: float = 0.2,
    seed: int = 0,
    augment: str = "standard",
    hflip: float = 0.5,
    elastic: float = 0.0,
    min_scale: float | None = None,
    classes: str | list[str] | None = None,
    strict: bool = False,
) -> DataSplits:
    """Train and val datasets for `spec`: shapes[:TRAIN:VAL], a mask folder or a COCO JSON.

    Every image (and mask) is checked before training (`drop_unreadable`): pairs
    with an unreadable file are left out and listed in `skipped`, or with
    `strict` the first is an error.
    """
    if not 0.0 < val_split < 1.0:
        raise RecogError(f"--val-split must be between 0 and 1, not {val_split}")
    make = _maker(
        instance, img_size, augment=augment, hflip=hflip, elastic=elastic, min_scale=min_scale
    )
    fmt = segmentation_format(spec)
    if fmt is DataFormat.SHAPES:
        return _shapes_splits(spec, instance, img_size, make)
    path = Path(spec)
    if not path.exists():
        raise RecogError(f"{spec}: no such file or directory")
    if fmt is DataFormat.COCO:
        return _coco_splits(spec, instance, make, val_split=val_split, seed=seed, strict=strict)
    if fmt is not DataFormat.MASK_FOLDERS:
        raise RecogError(f"{spec}: {NOT_SEGMENTATION}")
    if instance:
        raise RecogError(
            f"{spec}: image/mask folders hold class masks, not instances; "
            "instance models (mask_rcnn) train on COCO JSON or shapes"
        )
    return _folder_splits(
        spec, make, val_split=val_split, seed=seed, classes=classes, strict=strict
    )


#: builds a split's dataset from its loader, its size and whether it is the training split
_Make = Callable[[Callable, int, bool], Dataset]


def _maker(
    instance: bool, img_size: int, *, augment: str, hflip: float, elastic: float,
    min_scale: float | None,
) -> _Make:  # fmt: skip
    """How a split's dataset is made: instance or semantic, augmented when training."""
    if instance:
        aug: Any = instance_train_transform(hflip=hflip, augment=augment, min_scale=min_scale)

        def make(load: Callable, n: int, train: bool) -> Dataset:
            return InstanceDataset(load, n, img_size=img_size, augment=aug if train else None)

        return make
    aug = semantic_train_transform(
        img_size=img_size, augment=augment, hflip=hflip, elastic=elastic, min_scale=min_scale
    )

    def make_semantic(load: Callable, n: int, train: bool) -> Dataset:
        return SemanticDataset(load, n, augment=aug if train else None)

    return make_semantic


def _shapes_splits(spec: str, instance: bool, img_size: int, make: _Make) -> DataSplits:
    """shapes[:TRAIN:VAL]: scenes drawn on the fly, the validation ones from their own offset."""
    n_train, n_val = parse_shapes(spec)  # type: ignore[misc]
    cfg = ShapesConfig(img_size=max(img_size, 64))
    loader = _ShapesInstance if instance else _ShapesSemantic
    names = list(cfg.classes) if instance else ["background", *cfg.classes]
    return DataSplits(
        make(loader(0, cfg), n_train, True),
        make(loader(SHAPES_VAL_OFFSET, cfg), n_val, False),
        names,
        "shapes",
        TaskName.SEGMENT,
    )


def _coco_splits(
    spec: str, instance: bool, make: _Make, *, val_split: float, seed: int, strict: bool
) -> DataSplits:
    """A COCO JSON's polygons / RLE, split by image; semantic tasks add a background class."""
    path = Path(spec)
    train_images, val_images, cat_index, names = split_coco_masks(
        path, val_split=val_split, seed=seed
    )
    (train_images, val_images), skipped = drop_unreadable(
        [train_images, val_images], _coco_files, strict=strict, desc="images"
    )
    require_both(train_images, val_images, spec=spec, skipped=skipped)
    if not instance:
        names = ["background", *names]
    return DataSplits(
        make(_CocoLoader(train_images, cat_index, not instance), len(train_images), True),
        make(_CocoLoader(val_images, cat_index, not instance), len(val_images), False),
        names,
        path.stem,
        TaskName.SEGMENT,
        skipped=skipped,
    )


def _folder_splits(
    spec: str, make: _Make, *, val_split: float, seed: int, classes: str | list[str] | None,
    strict: bool,
) -> DataSplits:  # fmt: skip
    """image/mask folders (class masks), split by pair; the classes from `classes` or the
    masks' values."""
    path = Path(spec)
    train, val, warnings = split_pairs(path, val_split=val_split, seed=seed)
    for line in warnings:
        warn(line)
    (train, val), skipped = drop_unreadable(
        [train, val], _pair_files, strict=strict, desc="images and masks"
    )
    require_both(train, val, spec=spec, skipped=skipped)
    names, decode = resolve_classes(train + val, path, classes)
    return DataSplits(
        make(_PairLoader(train, decode), len(train), True),
        make(_PairLoader(val, decode), len(val), False),
        names,
        path.name,
        TaskName.SEGMENT,
        skipped=skipped,
    )


def _pair_files(pair: MaskPair) -> tuple[Path, Path]:
    return (pair.image, pair.mask)


def _coco_files(image: CocoImage) -> tuple[Path]:
    return (image.path,)


def load_segmentation_eval(
    spec: str, *, instance: bool, img_size: int, class_names: list[str], classes: str | None = None
) -> Dataset:
    """Every image of `spec` (shapes: its validation scenes), checked against the run's classes."""
    fmt = segmentation_format(spec)
    if fmt is DataFormat.SHAPES:
        return load_segmentation(spec, instance=instance, img_size=img_size).val
    path = Path(spec)
    if fmt is DataFormat.COCO:
        images, cat_index, names = read_coco_masks(path)
        (images,), _ = drop_unreadable([images], _coco_files, strict=False, desc="images")
        names = names if instance else ["background", *names]
        if names != class_names:
            raise RecogError(f"{spec}: classes {names} differ from the run's {class_names}")
        loader = _CocoLoader(images, cat_index, not instance)
        if instance:
            return InstanceDataset(loader, len(images), img_size=img_size)
        return SemanticDataset(loader, len(images))
    if fmt is not DataFormat.MASK_FOLDERS:
        raise RecogError(f"{spec}: not segmentation data (expected images/ and masks/ folders)")
    (pairs,), _ = drop_unreadable([all_pairs(path)], _pair_files, strict=False, desc="images")
    if not pairs:
        raise RecogError(f"{spec}: no readable image/mask pairs to evaluate")
    _, decode = resolve_classes(pairs, path, classes or ",".join(class_names))
    return SemanticDataset(_PairLoader(pairs, decode), len(pairs))
