"""The fixed vocabularies of recog: task names and metric names.

In a module of their own, with nothing but the standard library, so that
what needs only the names (`recog --help`, `recog.config`) does not import
torch; `recog.types` re-exports them beside the records.
"""

from __future__ import annotations

from enum import StrEnum


class TaskName(StrEnum):
    CLASSIFY = "classify"
    DETECT = "detect"
    SEGMENT = "segment"


class MetricName(StrEnum):
    """The headline metric names of `metrics.json` (DESIGN.md), fractions in [0, 1]."""

    TOP1 = "top1"
    TOP5 = "top5"
    MACRO_F1 = "macro_f1"
    ECE = "ece"
    MAP = "map"  # COCO mAP@[.5:.95]
    MAP50 = "map50"
    MAP75 = "map75"
    MASK_MAP = "mask_map"
    MASK_MAP50 = "mask_map50"
    MIOU = "miou"
    DICE = "dice"
    PIXEL_ACC = "pixel_acc"
