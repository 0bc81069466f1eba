"""Semantic segmentation behind the Task seam (`SegmentTask`), and the segment task's data loading (one job: the loaders build the samples the task's seam methods read, tiles and padding included).

The instance task (`recog.tasks.instance.InstanceSegmentTask`) shares the task
name "segment" and this module's loaders.

The model's registry spec decides which (`recog.tasks.task_class`):
`spec.instance` (Mask R-CNN) gives the instance task; everything else predicts
a class per pixel.

Semantic inputs keep their own resolution.  Training batches are random
`img_size` crops; prediction runs the whole image when it fits in
twice `img_size`, else a sliding window of such tiles overlapping by a
quarter, averaging the soft-max where tiles overlap.  Records:
`Prediction.mask` (H, W) int64 class ids in original pixels.  The loss is cross-entropy
(ignore index 255, optional class weights), Dice (segmentation_models_pytorch),
or their sum.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import draw_segmentation_masks

from recog.config import parse_class_weights
from recog.data.formats.masks import encode_png
from recog.errors import RecogError
from recog.metrics.base import Accumulator
from recog.names import MetricName, TaskName
from recog.recipe import FineTune, TaskRecipe
from recog.tasks.base import Task, normalization
from recog.tasks.data import SEGMENT_DATA, TaskData
from recog.tasks.drawing import palette
from recog.types import IGNORE_INDEX, Batch, Prediction, Sample, Target, TaskScores

if TYPE_CHECKING:
    from recog.config import TrainConfig
    from recog.models.registry import ModelSpec

#: fraction of a tile shared with its neighbour in sliding-window inference
TILE_OVERLAP = 0.25
#: inference window / training crop: a convolutional network sees the same scale in a
#: larger window, and fewer windows mean fewer seams and less overlap to recompute
WINDOW_FACTOR = 2


def png_b64(mask: torch.Tensor) -> str:
    return base64.b64encode(encode_png(mask)).decode("ascii")


def _parse_weights(text: str | None, n: int) -> torch.Tensor | None:
    values = parse_class_weights(text, n) if text else None
    return None if values is None else torch.tensor(values, dtype=torch.float32)


class SegmentTask(Task):
    """Semantic segmentation: one class per pixel."""

    name: ClassVar[TaskName] = TaskName.SEGMENT
    data: ClassVar[TaskData] = SEGMENT_DATA
    scores: ClassVar[TaskScores] = TaskScores(
        primary=MetricName.MIOU,
        headline=(MetricName.MIOU, MetricName.DICE, MetricName.PIXEL_ACC),
        labels={"per_class": "IoU"},
    )
    # unet at 256 px and strong augmentation below 100 images: membrane (24 images) 0.786 mIoU
    # with 300 steps of 8 (docs/recipe.md); shapes (2,000) 0.91 with standard augmentation
    recipe: ClassVar[TaskRecipe] = TaskRecipe(
        models=((1 << 30, "unet"),),
        size_cap_cpu=256,
        size_cap_gpu=512,
        size_floor=64,
        batch_max=16,
        lr=2e-3,
        lr_batch=16,
        weight_decay=1e-4,
        strong_below=100,
        weighs_classes=True,
        min_scales={"none": 1.0, "light": 1.0, "standard": 0.75, "strong": 0.5},
        # from the ImageNet encoder (unet_lite0): the decoder and head start fresh (0.83 M of
        # 3.8 M parameters) and keep the from-scratch unet's measured rate, 2e-3 at batch 8;
        # the encoder half of it after one epoch of the decoder alone; the input size and
        # the augmentation from the data, as from scratch (crops at the image's own scale:
        # the weights' 224 px is no resize here).  Budget: the from-scratch one, 60 * sqrt(n)
        # and at least 300 steps, as detection's (its fresh parts are as deep): on membrane
        # (EM slices, far from ImageNet) mIoU rose with the steps, 0.779 at 150, 0.786 at
        # 200, 0.7877 at 300 (from scratch 0.7875 at 300), and a unet_lite0 step costs less
        # than a resnet18 unet's (1.25 s against 1.41 s with validation; docs/recipe.md)
        finetune=FineTune(
            model="unet_lite0",
            steps_per_sqrt_image=60.0,
            min_steps=300,
            lr=2e-3,
            lr_batch=8,
            head_epochs=1.0,
            backbone_lr=0.5,
            min_scale=None,
            size_floor=64,
            size_from_weights=False,
        ),
    )

    def __init__(
        self,
        class_names: list[str],
        mean: Sequence[float],
        std: Sequence[float],
        *,
        img_size: int,
        loss: str = "ce_dice",
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__(class_names, mean, std)
        if loss not in ("ce", "dice", "ce_dice"):
            raise RecogError(f"segmentation loss must be ce, dice or ce_dice, not {loss!r}")
        self.img_size, self.loss_name, self.class_weights = img_size, loss, class_weights
        self._dice: nn.Module | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, class_names: list[str], spec: ModelSpec) -> SegmentTask:
        return cls(
            class_names,
            *normalization(cfg, spec),
            img_size=int(cfg.img_size),
            loss=cfg.seg_loss,
            class_weights=_parse_weights(cfg.class_weights, len(class_names)),
        )

    # ------------------------------------------------------------- batches
    def prepare(
        self, image: torch.Tensor, full_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Images keep their resolution (big ones are tiled in `predict`): `decode_size`
        is the base class's None, so `full_size` is always the image's own."""
        return image, {"orig_size": tuple(image.shape[-2:])}

    def collate(self, samples: Sequence[Sample]) -> Batch:
        """images (B, 3, H, W) uint8, padded bottom-right to the largest sample;
        targets (B, H, W) int64 with 255 in the padding."""
        h = max(int(s.image.shape[-2]) for s in samples)
        w = max(int(s.image.shape[-1]) for s in samples)
        images = torch.zeros((len(samples), 3, h, w), dtype=torch.uint8)
        masks = torch.full((len(samples), h, w), IGNORE_INDEX, dtype=torch.int64)
        meta = []
        for i, s in enumerate(samples):
            sh, sw = s.image.shape[-2:]
            images[i, :, :sh, :sw] = s.image
            masks[i, :sh, :sw] = s.target.mask
            meta.append({"path": s.path, "orig_size": s.orig_size, "size": (int(sh), int(sw))})
        return Batch(images, masks, [s.target for s in samples], meta)

    # ---------------------------------------------------------------- loss
    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        logits = model(self.normalize(batch.images)).float()
        target = batch.targets
        parts: dict[str, torch.Tensor] = {}
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        if self.loss_name in ("ce", "ce_dice"):
            if bool((target != IGNORE_INDEX).any()):
                parts["ce"] = F.cross_entropy(
                    logits, target, weight=weight, ignore_index=IGNORE_INDEX
                )
            else:  # an all-ignore batch (a crop of padding): the mean would be 0/0
                parts["ce"] = logits.sum() * 0.0
        if self.loss_name in ("dice", "ce_dice"):
            if self._dice is None:
                from segmentation_models_pytorch.losses import DiceLoss

                self._dice = DiceLoss(
                    "multiclass",
                    ignore_index=IGNORE_INDEX,
                    class_weights=None if weight is None else weight.tolist(),
                )
            parts["dice"] = self._dice(logits, target)
        loss = sum(parts.values())
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    # ------------------------------------------------------------- predict
    def probabilities(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Soft-max (B, C, H, W) for normalized x; a sliding window above 2 x `img_size`."""
        h, w = x.shape[-2:]
        tile = self.img_size * WINDOW_FACTOR
        if h <= tile and w <= tile:
            return model(x).float().softmax(1)
        stride = max(1, int(tile * (1 - TILE_OVERLAP)))
        ph, pw = max(0, tile - h), max(0, tile - w)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        H, W = x.shape[-2:]
        ys = sorted({*range(0, H - tile, stride), H - tile})
        xs = sorted({*range(0, W - tile, stride), W - tile})
        total = torch.zeros((x.shape[0], self.num_classes, H, W), device=x.device)
        count = torch.zeros((1, 1, H, W), device=x.device)
        for y0 in ys:
            for x0 in xs:
                window = x[..., y0 : y0 + tile, x0 : x0 + tile]
                total[..., y0 : y0 + tile, x0 : x0 + tile] += model(window).float().softmax(1)
                count[..., y0 : y0 + tile, x0 : x0 + tile] += 1
        return (total / count)[..., :h, :w]

    @torch.no_grad()
    def predict(
        self, model: nn.Module, images: torch.Tensor, meta: Sequence[dict[str, Any]] | None = None
    ) -> list[Prediction]:
        labels = self.probabilities(model, self.normalize(images)).argmax(1).cpu()
        preds = []
        for i, lab in enumerate(labels):
            info = meta[i] if meta else {}
            h, w = info.get("size", info.get("orig_size", lab.shape))
            preds.append(Prediction(mask=lab[:h, :w].long()))
        return preds

    def metrics(self) -> Accumulator:
        from recog.metrics.segmentation import SemanticAccumulator

        return SemanticAccumulator(self.class_names)

    # -------------------------------------------------------------- output
    def shown_classes(self) -> list[int]:
        """Classes coloured in drawings: all but one named background."""
        return [
            k
            for k, n in enumerate(self.class_names)
            if n.lower() not in ("background", "_background_")
        ]

    def draw(
        self, image: torch.Tensor, prediction: Prediction, target: Target | None = None
    ) -> torch.Tensor:
        classes = self.shown_classes()
        masks = torch.stack([prediction.mask == k for k in classes])
        colours = palette(self.num_classes)
        return draw_segmentation_masks(
            image.cpu(), masks.cpu(), alpha=0.45, colors=[colours[k] for k in classes]
        )

    def pixel_counts(self, mask: torch.Tensor) -> torch.Tensor:
        """Pixels of each class id (ignored pixels counted at IGNORE_INDEX)."""
        return torch.bincount(mask.flatten().clamp(0, IGNORE_INDEX), minlength=self.num_classes)

    def to_record(self, prediction: Prediction, *, top_k: int = 5) -> dict[str, Any]:
        mask = prediction.mask
        counts = self.pixel_counts(mask)
        total = max(1, mask.numel())
        return {
            "segmentation": {
                "width": int(mask.shape[1]),
                "height": int(mask.shape[0]),
                "mask_png": png_b64(mask),
                "pixel_fraction": {
                    n: round(float(counts[k]) / total, 6) for k, n in enumerate(self.class_names)
                },
            }
        }
