"""Where each task's data comes from: a run's config turned into recog.data's calls.

`Task.data` is one `TaskData` per task: its survey (the facts the recipe
decides from, before anything is decoded), its train and validation splits,
and an evaluation set of other data with the run's classes.  The functions
here only say which of a run's fields each loader takes; the loading itself
is recog.data's.  Mask R-CNN's instance task reads segmentation data, so it
shares `SEGMENT_DATA`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recog.models.factory import get_spec

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from recog.config import TrainConfig, TrainRequest
    from recog.data.splits import DataSplits
    from recog.types import DataFacts


@dataclass(frozen=True)
class TaskData:
    #: counts, classes and image sides of `cfg.data`, before anything is decoded (from
    #: what the user asked: the recipe decides from these facts)
    survey: Callable[[TrainRequest], DataFacts]
    #: train and validation datasets for `cfg.data` (samples already at `cfg.img_size`)
    splits: Callable[[TrainConfig], DataSplits]
    #: an evaluation dataset from other data (`data`), with the run's classes
    evaluation: Callable[[str, TrainConfig, list[str]], Dataset]


def _split_options(cfg: TrainConfig) -> dict[str, Any]:
    """What every task's training splits take from a run: the input size, the split and
    the augmentation common to all, and whether an unreadable file stops the run."""
    return {
        "img_size": int(cfg.img_size),
        "val_split": cfg.val_split,
        "seed": cfg.seed,
        "augment": str(cfg.augment),
        "hflip": float(cfg.hflip),
        "min_scale": float(cfg.min_scale),
        "strict": cfg.strict,
    }


def _classify_survey(cfg: TrainRequest) -> DataFacts:
    from recog.data.survey import survey_classification

    return survey_classification(
        cfg.data, val_split=cfg.val_split, seed=cfg.seed, group_by=cfg.group_by
    )


def _classify_splits(cfg: TrainConfig) -> DataSplits:
    from recog.data import load_classification

    return load_classification(
        cfg.data,
        **_split_options(cfg),
        auto_augment=cfg.auto_augment,
        crop_pct=float(cfg.crop_pct),
        cache=cfg.cache,
        class_names=cfg.classes,
        group_by=cfg.group_by,
    )


def _classify_evaluation(data: str, cfg: TrainConfig, class_names: list[str]) -> Dataset:
    from recog.data import load_eval_dataset

    return load_eval_dataset(
        data,
        class_names=class_names,
        img_size=int(cfg.img_size),
        crop_pct=float(cfg.crop_pct),
        cache=cfg.cache,
        strict=cfg.strict,
    )


def _detect_survey(cfg: TrainRequest) -> DataFacts:
    from recog.data.survey import survey_detection

    return survey_detection(cfg.data, val_split=cfg.val_split, seed=cfg.seed, group_by=cfg.group_by)


def _detect_splits(cfg: TrainConfig) -> DataSplits:
    from recog.data.detect import load_detection

    return load_detection(
        cfg.data,
        **_split_options(cfg),
        mosaic=float(cfg.mosaic),
        mosaic_off_epochs=int(cfg.mosaic_off_epochs),
        class_names=cfg.classes,
        group_by=cfg.group_by,
    )


def _detect_evaluation(data: str, cfg: TrainConfig, class_names: list[str]) -> Dataset:
    from recog.data.detect import load_detection_eval

    return load_detection_eval(data, img_size=int(cfg.img_size), class_names=class_names)


def _segment_survey(cfg: TrainRequest) -> DataFacts:
    from recog.data.survey import survey_segmentation

    instance = cfg.model is not None and get_spec(cfg.model).instance
    return survey_segmentation(
        cfg.data, instance=instance, val_split=cfg.val_split, seed=cfg.seed, classes=cfg.classes,
        group_by=cfg.group_by,
    )  # fmt: skip


def _segment_splits(cfg: TrainConfig) -> DataSplits:
    from recog.data.segment import load_segmentation

    return load_segmentation(
        cfg.data,
        **_split_options(cfg),
        instance=get_spec(str(cfg.model)).instance,
        elastic=float(cfg.elastic),
        classes=cfg.classes,
    )


def _segment_evaluation(data: str, cfg: TrainConfig, class_names: list[str]) -> Dataset:
    from recog.data.segment import load_segmentation_eval

    return load_segmentation_eval(
        data,
        instance=get_spec(str(cfg.model)).instance,
        img_size=int(cfg.img_size),
        class_names=class_names,
        classes=cfg.classes,
    )


CLASSIFY_DATA = TaskData(_classify_survey, _classify_splits, _classify_evaluation)
DETECT_DATA = TaskData(_detect_survey, _detect_splits, _detect_evaluation)
SEGMENT_DATA = TaskData(_segment_survey, _segment_splits, _segment_evaluation)
