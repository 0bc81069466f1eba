"""What every metric accumulator answers, and the figure data it hands the report.

`Accumulator` collects predictions over an evaluation pass and reduces them to
metrics.  It computes; it does not draw: `figures` returns `Figure` records
(what to plot, as numbers) and `recog.report.plots.draw_figures` renders them,
so metrics sit below the report in the layers and never import matplotlib.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from recog.types import Prediction, Target

#: the figure kinds the report knows how to draw
FigureKind = Literal["confusion", "pr_curves", "reliability", "f1_confidence", "labels"]


@dataclass(frozen=True)
class Figure:
    """One plot as data: `kind` says how to draw it, `file` the PNG's stem.

    confusion: `matrix` (rows true, columns predicted, counts), `labels` (one
        per row), `title`, `xlabel`, `ylabel`; `panels` "counts+rates" or
        "rates"; `skip_corner` leaves the last cell (background x background) blank.
    pr_curves: `recall` (R,), `precision` (R, K) with -1 where a class has no
        truth, `labels` (K), `title`.
    reliability: `edges` (B + 1) of equal-width confidence bins; per bin `count`,
        mean `confidence` and `accuracy` (None when empty); `ece`, `title`, and
        `ylabel` (default "accuracy"; detection's is "precision").
    f1_confidence: `thresholds` (P,) and per threshold `f1`, `precision`, `recall`;
        `best_threshold`, `best_f1` (metrics/box_calibration.py).
    labels: a training split's label statistics (recog.data.label_stats): `labels` (K
        class names), `counts` (K), `count_of` (what was counted), `images` read of
        `total`; optionally `box_wh` and `box_centres` ((N, 2) fractions of the
        image's width and height) and `areas` (K fractions of the labelled pixels).
    """

    kind: FigureKind
    file: str
    data: dict[str, Any] = field(default_factory=dict)


class Accumulator(ABC):
    """Collects predictions over an evaluation pass and reduces them to metrics."""

    #: the C class names, in label order (keys of the `per_class*` maps)
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @abstractmethod
    def update(self, predictions: Sequence[Prediction], targets: Sequence[Target]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """Flat metric names of DESIGN.md (fractions in [0, 1]) plus `per_class`."""

    @abstractmethod
    def merge(self, other: Accumulator) -> None:
        """Fold in another rank's accumulator (distributed evaluation)."""

    def _check_merge(self, other: Accumulator) -> None:
        """A TypeError unless `other` is an accumulator of this kind, a ValueError unless it
        counts as many classes: what a `merge` checks first."""
        if not isinstance(other, type(self)):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")

    def figures(self, class_names: list[str]) -> list[Figure]:
        """Task-specific plots (confusion matrix, PR curves) as data; default none."""
        return []
