"""Where a run starts: from ImageNet weights (and which) or from scratch, and what config.yaml records of it.

The recipe's first decision (`recog.recipe.resolve` calls `choose_start` before
any other rule, since the model and the weights decide the rest): a task's
`FineTune` part names its pretrained default and the fine-tuning rules that
replace the from-scratch ones; the weights resolve to one record of the table
(`recog.models.weights.for_weights`: a pip package's, a library cache's or
the user's file), whose preprocessing the run takes; `pretrained_record` is
the provenance a run keeps (name, source, file, sha256).  Evidence: docs/recipe.md, "Fine-tuning".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recog.config import NONE, TrainRequest
from recog.models import pretrained
from recog.models.factory import get_spec
from recog.models.pretrained import IMAGENET, PretrainedWeights
from recog.models.weights import for_weights
from recog.types import DataFacts


@dataclass(frozen=True)
class FineTune:
    """A task's recipe for starting from pretrained weights (docs/recipe.md, "Fine-tuning").

    Measured on hymenoptera and its 20-a-class subset against the same task from scratch
    (bench/transfer.py): a few epochs at a lower rate with the new head trained first reach
    what hundreds of from-scratch steps do not."""

    #: the default model when its weights are on the machine
    model: str
    #: smaller images than this (median side) train from scratch: ImageNet features of an
    #: 8 px digit upscaled 28x are not worth 50x the compute (digits: 0.997 from scratch)
    min_side: int = 65
    steps_per_sqrt_image: float = 10.0
    min_steps: int = 100
    lr: float = 1e-3  # AdamW, at lr_batch
    lr_batch: int = 32
    head_epochs: float = 1.0
    backbone_lr: float = 1.0
    #: smallest crop / scale of the augmentation; None: the augment level's, as from scratch
    min_scale: float | None = 0.35
    size_floor: int = 96
    #: the input size is the weights' own (a classifier resizes whole images to it); False:
    #: from the data as from scratch (segmentation trains on crops at the image's own scale)
    size_from_weights: bool = True

    #: the task recipe's settings a fine-tuning run takes from here instead
    RECIPE_FIELDS = ("steps_per_sqrt_image", "min_steps", "lr", "lr_batch", "size_floor")

    def recipe_settings(self) -> dict[str, Any]:
        """What a fine-tuning run's task recipe takes from here (`RECIPE_FIELDS`)."""
        return {name: getattr(self, name) for name in self.RECIPE_FIELDS}


def choose_start(
    cfg: TrainRequest,
    facts: DataFacts,
    fine: FineTune | None,
    scratch_model: Callable[[], str],
    notes: list[str],
) -> tuple[str, str, PretrainedWeights | None]:
    """The model, the `weights` value and the pretrained record the run starts from.

    Left out, the weights are the model's ImageNet file where it is on this machine; the
    model, the task's fine-tuning default where the images are big enough for ImageNet
    features and its file is here, else the from-scratch default (`scratch_model`)."""
    model = cfg.model
    weights = cfg.weights
    if model is None:
        big_enough = fine is not None and facts.median_side >= fine.min_side
        if fine is not None and weights in (None, IMAGENET) and big_enough:
            record = pretrained.get(get_spec(fine.model).pretrained)
            if record.available():
                model = fine.model
            elif weights == IMAGENET:
                record.path()  # raises: the one line saying which package is missing
            else:
                notes.append(
                    f"from scratch: {record.name}'s package {record.package} is not installed"
                )
        if model is None:
            model = scratch_model()
            notes.append(
                f"model {model}: the default for {facts.task} data with images of "
                f"~{facts.median_side} px"
                + (
                    ""
                    if big_enough or fine is None
                    else f" (under {fine.min_side} px: from scratch)"
                )
            )
        else:
            notes.append(
                f"model {model}: fine-tuned from ImageNet weights, the default for "
                f"{facts.task} data with images of ~{facts.median_side} px"
            )
    spec = get_spec(model)
    if weights is None:
        own = pretrained.get(spec.pretrained) if spec.pretrained else None
        weights = IMAGENET if own is not None and own.available() else NONE
    # the one lookup: the pip package's, a library cache's or the user's file (None: none)
    record = for_weights(spec, weights, cfg.model_args or {})
    if record is not None and record.locator.kind != "file":
        record.path()  # the file is here, or one line saying where to put it
        what = "ImageNet weights" if weights == IMAGENET else f"{weights}'s weights"
        notes.append(f"weights {record.name}: {what} from {record.source()}")
    return model, weights, record


def pretrained_record(weights: str, record: PretrainedWeights | None) -> dict[str, str]:
    """What config.yaml records of the pretrained start: name, source, file, sha256 (the
    table's, else computed from the file), licence."""
    if record is None:
        return {}
    if record.locator.kind == "file":
        path = Path(weights)
        info = {"name": weights, "source": "file"}
        if path.is_file():
            info |= {"file": str(path.resolve()), "sha256": pretrained.sha256_of(path)}
        return info
    path = record.path()
    return {
        "name": record.name,
        "source": record.source(),
        "file": str(path),
        "sha256": record.sha256 or pretrained.sha256_of(path),
        "licence": record.licence,
    }
