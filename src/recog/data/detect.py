"""Detection data: box-aware augmentation, letterboxing, mosaic, the Dataset and the loaders.

Every image is letterboxed to `img_size` x `img_size`: scaled so its longer
side fits, placed at the top-left, the rest filled with grey (114).  Mapping
back to the original image is then a single division by `scale`, which the
task applies to predictions.  Training augmentation is torchvision
transforms.v2 on `tv_tensors.BoundingBoxes` (flip, scale jitter with
translation, colour jitter), then `SanitizeBoundingBoxes` drops boxes that
fell out of the picture.

Sources: the built-in `shapes` scenes and any annotation set
`read_detection` understands (COCO JSON, YOLO, Pascal VOC), split by
`split_records` (the source's own split, else a fixed-seed one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from recog.console import warn
from recog.data.formats.detection import read_detection
from recog.data.formats.records import DetectionRecord
from recog.data.formats.shapes import ShapesConfig, parse_shapes, render_scene
from recog.data.images import drop_unreadable, read_image
from recog.data.splits import DataSplits, split_records
from recog.errors import RecogError
from recog.types import Sample, Target, TaskName

PAD_VALUE = 114


def letterbox(
    image: torch.Tensor, boxes: torch.Tensor, size: int, *, full_size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(3, H, W) uint8 and (N, 4) xyxy -> (3, size, size), boxes scaled, and the scale.

    full_size: (H, W) of the whole image when `image` was decoded smaller
    (`recog.data.images.Decoded`); the scale and the placement are then the whole
    image's, so predictions divided by `scale` land in its pixels."""
    h, w = full_size or image.shape[-2:]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != tuple(image.shape[-2:]):
        image = TF.resize(image, [nh, nw], antialias=True)
    out = torch.full((3, size, size), PAD_VALUE, dtype=torch.uint8)
    out[:, :nh, :nw] = image
    return out, boxes * scale, scale


def detection_train_transform(
    *, hflip: float = 0.5, scale: tuple[float, float] = (0.5, 1.5)
) -> v2.Transform:
    """Box-aware augmentation applied before the letterbox."""
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(hflip),
            v2.RandomAffine(degrees=0.0, translate=(0.1, 0.1), scale=scale, fill=PAD_VALUE),
            v2.ColorJitter(0.3, 0.3, 0.3, 0.02),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=2.0),
        ]
    )


@dataclass
class DetectionItem:
    """What a source yields before augmentation: image, boxes, labels, name."""

    image: torch.Tensor  # (3, H, W) uint8
    boxes: torch.Tensor  # (N, 4) float xyxy pixels
    labels: torch.Tensor  # (N,) int64
    path: str


def mosaic(items: list[DetectionItem], size: int, *, center: tuple[float, float]) -> DetectionItem:
    """Four items in one `size` x `size` image, at their letterboxed scale (YOLOv4's mosaic).

    Each item is letterboxed to `size` and placed with a corner at `center` on
    a grey 2*size canvas (top-left, top-right, bottom-left, bottom-right); the
    result is the canvas's central `size` window, so objects keep the scale
    validation sees them at, as in Ultralytics (which draws the center from
    [size/2, 3*size/2]).  Boxes are clipped to the window; those left empty
    are dropped by the augmentation's sanitizer.
    """
    canvas = torch.full((3, 2 * size, 2 * size), PAD_VALUE, dtype=torch.uint8)
    cx, cy = round(center[0]), round(center[1])
    all_boxes, all_labels = [], []
    for k, item in enumerate(items):
        tile, boxes, _ = letterbox(item.image, item.boxes.float(), size)
        h, w = item.image.shape[-2:]
        th, tw = round(h * size / max(h, w)), round(w * size / max(h, w))
        tile = tile[:, :th, :tw]
        # tile k's corner at the center: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
        x0 = cx - tw if k in (0, 2) else cx
        y0 = cy - th if k in (0, 1) else cy
        sx0, sy0 = max(0, -x0), max(0, -y0)
        dx0, dy0 = max(0, x0), max(0, y0)
        dx1, dy1 = min(2 * size, x0 + tw), min(2 * size, y0 + th)
        canvas[:, dy0:dy1, dx0:dx1] = tile[:, sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
        boxes = boxes + torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(dx0, dx1)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(dy0, dy1)
        all_boxes.append(boxes)
        all_labels.append(item.labels.long())
    lo = size // 2
    boxes = (torch.cat(all_boxes).reshape(-1, 4) - lo).clamp(0, size)
    return DetectionItem(
        canvas[:, lo : lo + size, lo : lo + size].clone(),
        boxes,
        torch.cat(all_labels),
        "mosaic(" + ", ".join(i.path for i in items) + ")",
    )


class DetectionDataset(Dataset):
    """Samples with `target` in letterboxed pixels and `meta["truth"]` in original pixels.

    mosaic: probability that a training sample is a mosaic of four images
        (this one and three drawn at random); `mosaic_off_epochs`: the last
        epochs train without it, on whole images as validation sees them
        (Ultralytics' `close_mosaic`).  The engine announces epochs through
        `set_epoch(epoch, epochs)`, as a DistributedSampler's.
    """

    def __init__(
        self,
        load: Callable[[int], DetectionItem],
        length: int,
        *,
        img_size: int,
        augment: Callable[..., Any] | None = None,
        mosaic: float = 0.0,
        mosaic_off_epochs: int = 0,
    ) -> None:
        self.load, self.length, self.img_size, self.augment = load, length, img_size, augment
        self.mosaic, self.mosaic_off_epochs = mosaic, mosaic_off_epochs
        self._mosaic_now = mosaic

    def __len__(self) -> int:
        return self.length

    def annotation(self, index: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Item `index`'s boxes (N, 4) xyxy pixels, labels (N,) and image (H, W), before any
        augmentation (recog.data.label_stats); listed files are not decoded."""
        return self.load.annotation(index)  # type: ignore[attr-defined]

    @property
    def listed_annotations(self) -> bool:
        """Whether `annotation` reads a list (files' records) rather than drawing a scene."""
        return isinstance(self.load, _RecordLoader)

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self._mosaic_now = self.mosaic if epoch < epochs - self.mosaic_off_epochs else 0.0

    def _item(self, index: int) -> DetectionItem:
        if self._mosaic_now <= 0 or float(torch.rand(())) >= self._mosaic_now:
            return self.load(index)
        others = torch.randint(0, self.length, (3,)).tolist()
        center = (0.5 + torch.rand(2)) * self.img_size
        items = [self.load(i) for i in (index, *others)]
        return mosaic(items, self.img_size, center=(float(center[0]), float(center[1])))

    def __getitem__(self, index: int) -> Sample:
        item = self._item(index)
        h, w = item.image.shape[-2:]
        truth = Target(boxes=item.boxes.float(), labels=item.labels.long())
        image, boxes, labels = item.image, item.boxes.float(), item.labels.long()
        if self.augment is not None:
            bb = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w))
            image, target = self.augment(tv_tensors.Image(image), {"boxes": bb, "labels": labels})
            image, boxes, labels = (
                image.as_subclass(torch.Tensor),
                target["boxes"].as_subclass(torch.Tensor),
                target["labels"],
            )
        image, boxes, scale = letterbox(image, boxes, self.img_size)
        return Sample(
            image=image,
            target=Target(boxes=boxes, labels=labels),
            path=item.path,
            orig_size=(int(h), int(w)),
            meta={"scale": scale, "truth": truth},
        )


class _ShapesLoader:
    def __init__(self, offset: int, seed: int, config: ShapesConfig) -> None:
        self.offset, self.seed, self.config = offset, seed, config

    def __call__(self, index: int) -> DetectionItem:
        scene = render_scene(self.offset + index, seed=self.seed, config=self.config)
        return DetectionItem(
            scene.image, scene.boxes, scene.labels, f"shapes[{self.offset + index}]"
        )

    def annotation(self, index: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        item = self(index)
        return item.boxes, item.labels, (int(item.image.shape[-2]), int(item.image.shape[-1]))


class _RecordLoader:
    def __init__(self, records: list[DetectionRecord]) -> None:
        self.records = records

    def __call__(self, index: int) -> DetectionItem:
        r = self.records[index]
        return DetectionItem(read_image(r.path), r.boxes, r.labels, str(r.path))

    def annotation(self, index: int) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        r = self.records[index]
        return r.boxes, r.labels, (int(r.height), int(r.width))


def load_detection(
    spec: str,
    *,
    img_size: int,
    val_split: float = 0.2,
    seed: int = 0,
    augment: str = "standard",
    hflip: float = 0.5,
    min_scale: float = 0.5,
    mosaic: float = 0.0,
    mosaic_off_epochs: int = 0,
    class_names: list[str] | None = None,
    strict: bool = False,
    group_by: str = "",
) -> DataSplits:
    """Train and val datasets; `min_scale`: random scale in [min_scale, 2 - min_scale].

    Every image is checked before training (`drop_unreadable`): unreadable ones are
    left out and listed in `skipped` (after the split, so the split is the one
    `recog data split` writes), or with `strict` the first is an error.
    """
    aug = (
        None
        if augment == "none"
        else detection_train_transform(hflip=hflip, scale=(min_scale, max(1.0, 2.0 - min_scale)))
    )
    mix = {"mosaic": mosaic if aug is not None else 0.0, "mosaic_off_epochs": mosaic_off_epochs}
    counts = parse_shapes(spec)
    if counts is not None:
        n_train, n_val = counts
        cfg = ShapesConfig(img_size=max(img_size, 64))
        # Scenes are a pure function of (seed, index): train and val never share an index,
        # and the validation scenes are the same whatever the training count.
        train = DetectionDataset(
            _ShapesLoader(0, 1234, cfg), n_train, img_size=img_size, augment=aug, **mix
        )
        val = DetectionDataset(_ShapesLoader(1_000_000, 1234, cfg), n_val, img_size=img_size)
        return DataSplits(train, val, list(cfg.classes), "shapes", TaskName.DETECT)
    path = Path(spec)
    if not path.exists():
        raise RecogError(f"{spec}: no such file or directory")
    ann = read_detection(path, class_names=class_names)
    train_recs, val_recs = split_records(
        ann.records, val_split=val_split, seed=seed, spec=spec, group_by=group_by
    )
    require_boxes(train_recs, spec=spec)
    for line in ann.warnings:
        warn(line)
    (train_recs, val_recs), skipped = drop_unreadable(
        [train_recs, val_recs], _record_files, strict=strict, desc="images"
    )
    require_both(train_recs, val_recs, spec=spec, skipped=skipped)
    name = path.stem if path.is_file() else path.name
    return DataSplits(
        DetectionDataset(
            _RecordLoader(train_recs), len(train_recs), img_size=img_size, augment=aug, **mix
        ),
        DetectionDataset(_RecordLoader(val_recs), len(val_recs), img_size=img_size),
        ann.class_names,
        name,
        TaskName.DETECT,
        skipped=skipped,
    )


def _record_files(record: DetectionRecord) -> tuple[Path]:
    return (record.path,)


def require_boxes(train: list[DetectionRecord], *, spec: str) -> None:
    """A RecogError when the training images hold no box: a detector would train on
    nothing but background and report mAP 0, as if it had learned."""
    if not any(len(r.boxes) for r in train):
        raise RecogError(
            f"{spec}: its {len(train)} training images hold no box to learn from (no "
            "annotations, or none of a listed category); annotate objects before training"
        )


def require_both(train: list, val: list, *, spec: str, skipped: list) -> None:
    """A RecogError when leaving out the unreadable images emptied a split."""
    for split, items in (("training", train), ("validation", val)):
        if not items:
            raise RecogError(
                f"{spec}: no readable {split} images left ({len(skipped)} unreadable, "
                f"first: {skipped[0][0] if skipped else '-'})"
            )


def load_detection_eval(spec: str, *, img_size: int, class_names: list[str]) -> Dataset:
    """All images of an annotation set, labels renumbered to the run's classes."""
    if parse_shapes(spec) is not None:
        return load_detection(spec, img_size=img_size).val
    ann = read_detection(Path(spec), class_names=class_names)
    (records,), _ = drop_unreadable([ann.records], _record_files, strict=False, desc="images")
    if not records:
        raise RecogError(f"{spec}: no readable images to evaluate")
    return DetectionDataset(_RecordLoader(records), len(records), img_size=img_size)
