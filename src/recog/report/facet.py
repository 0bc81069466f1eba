"""What the report shows of each task (`REPORT`): its sample grid, label statistics and
training batch, and each task's answer.

The report (`recog.report.run_outputs`) asks this table, never the task: the
predictions grid (`sample_panels`, `sample_columns` a row, `sample_caption`
and the `legend` of its colours), the training labels' statistics
(`label_figures`, computed by `recog.data.label_stats`) and the first
training batch as the loss saw it (`train_panels`, drawn by
`recog.report.views`).  Mask R-CNN's task is named "segment" but draws as a
detector with masks: it has its own entry by class.  The views use the
task's own drawing rules (`draw`, and the classes or boxes it shows), so a
picture in the report matches what `recog predict` draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch.nn.functional as F

from recog.data.label_stats import box_labels, class_labels, instance_labels, mask_labels
from recog.metrics.segmentation import SemanticAccumulator
from recog.report.views import (
    Colour,
    Panel,
    box_panels,
    legend,
    mask_panels,
    mixed_panels,
    triplets,
)
from recog.tasks.base import Task
from recog.tasks.classify import ClassifyTask
from recog.tasks.detect import DetectTask
from recog.tasks.drawing import palette
from recog.tasks.facets import FacetTable
from recog.tasks.instance import InstanceSegmentTask
from recog.tasks.segment import SegmentTask
from recog.types import Batch, Prediction, Sample

if TYPE_CHECKING:
    from recog.data.splits import DataSplits
    from recog.metrics.base import Figure

Samples = Sequence[tuple[Sample, Prediction]]


class ReportFacet(Protocol):
    """What the report asks of a task; `task` is the run's Task."""

    #: columns of the sample grid (`sample_panels` gives rows of this many), and what a
    #: row shows when it is more than one sample
    sample_columns: int
    sample_caption: str

    def sample_panels(self, task: Task, samples: Samples) -> list[Panel]:
        """The grid of predictions: per sample, the (3, H, W) uint8 image to show (drawn
        on), its title, and whether it is right (None: not a yes/no question)."""
        ...

    def legend(self, task: Task) -> list[tuple[str, Colour]]:
        """(class name, RGB colour) of what `draw` colours by class (masks); else none."""
        ...

    def label_figures(self, task: Task, splits: DataSplits) -> list[Figure]:
        """The training split's label statistics (`labels`: counts per class, box sizes and
        centres, mask areas), drawn by recog.report."""
        ...

    def train_panels(self, task: Task, batch: Batch) -> list[Panel]:
        """A training batch as the model sees it (after the train transforms, the mosaic and
        any batch mixing), each image with its targets drawn and a title."""
        ...


class _Views:
    """What every task's views share: six samples a row, no caption, no colour legend."""

    sample_columns = 6
    sample_caption = ""

    def legend(self, task: Task) -> list[tuple[str, Colour]]:
        return []


class ClassifyViews(_Views):
    """Each image titled with its answer (and the truth when wrong); training images with
    their (mixed) labels."""

    def sample_panels(self, task: ClassifyTask, samples: Samples) -> list[Panel]:
        panels: list[Panel] = []
        for sample, pred in samples:
            label = int(pred.labels)
            truth = int(sample.target.labels) if sample.target.labels is not None else None
            title = task.title(pred)
            if truth is not None and truth != label:
                title += f"\ntrue: {task.class_names[truth]}"
            panels.append((sample.image, title, None if truth is None else truth == label))
        return panels

    def label_figures(self, task: ClassifyTask, splits: DataSplits) -> list[Figure]:
        return [class_labels(splits.train_labels, task.class_names)]

    def train_panels(self, task: ClassifyTask, batch: Batch) -> list[Panel]:
        return mixed_panels(batch, task.class_names, normalize=task.normalize, mean=task.mean,
                            std=task.std, mix=task.batch_mix)  # fmt: skip


class DetectViews(_Views):
    """Each image with its boxes drawn and counted against the truth."""

    def sample_panels(self, task: DetectTask, samples: Samples) -> list[Panel]:
        images, titles = [], []
        for sample, pred in samples:
            scaled = Prediction(
                boxes=pred.boxes * sample.meta.get("scale", 1.0),
                labels=pred.labels,
                scores=pred.scores,
            )
            images.append(task.draw(sample.image, scaled, sample.target))
            titles.append(f"{int(task.shown(pred).sum())} found / {len(sample.target.labels)} true")
        return [(image, title, None) for image, title in zip(images, titles, strict=True)]

    def label_figures(self, task: DetectTask, splits: DataSplits) -> list[Figure]:
        return [box_labels(splits.train, task.class_names)]

    def train_panels(self, task: DetectTask, batch: Batch) -> list[Panel]:
        return box_panels(batch, task.class_names, palette(task.num_classes))


class InstanceViews(DetectViews):
    """A detector's views with masks, each image at its original size; every class in the
    legend."""

    def sample_panels(self, task: InstanceSegmentTask, samples: Samples) -> list[Panel]:
        images, titles = [], []
        for sample, pred in samples:
            truth = sample.meta.get("truth", sample.target)
            h, w = sample.orig_size
            scale = sample.meta.get("scale", 1.0)
            image = sample.image[:, : max(1, round(h * scale)), : max(1, round(w * scale))]
            image = (
                F.interpolate(image[None].float(), size=(h, w), mode="bilinear")[0].round().byte()
            )
            images.append(task.draw(image, pred, truth))
            titles.append(f"{int(task.shown(pred).sum())} found / {len(truth.labels)} true")
        return [(image, title, None) for image, title in zip(images, titles, strict=True)]

    def legend(self, task: InstanceSegmentTask) -> list[tuple[str, Colour]]:
        return legend(task.class_names, palette(task.num_classes), range(task.num_classes))

    def label_figures(self, task: InstanceSegmentTask, splits: DataSplits) -> list[Figure]:
        return [instance_labels(splits.train, task.class_names)]


class SemanticViews(_Views):
    """Rows of image, truth and prediction (its mIoU), in the `legend`'s colours; training
    crops with their masks."""

    #: a sample is shown as image, truth, prediction
    sample_columns = 3
    sample_caption = (
        "Each row: the image, its ground truth and the prediction, in the legend's colours."
    )

    def sample_panels(self, task: SegmentTask, samples: Samples) -> list[Panel]:
        def miou(pred: Prediction, sample: Sample) -> float:
            acc = SemanticAccumulator(task.class_names)
            acc.update([pred], [sample.target])
            return float(acc.compute()["miou"])

        return triplets(samples, palette(task.num_classes), task.shown_classes(), miou)

    def legend(self, task: SegmentTask) -> list[tuple[str, Colour]]:
        return legend(task.class_names, palette(task.num_classes), task.shown_classes())

    def label_figures(self, task: SegmentTask, splits: DataSplits) -> list[Figure]:
        return [mask_labels(splits.train, task.class_names)]

    def train_panels(self, task: SegmentTask, batch: Batch) -> list[Panel]:
        return mask_panels(batch, palette(task.num_classes), task.shown_classes())


REPORT: FacetTable[ReportFacet] = FacetTable(
    "{task}: the report has no views of this task",
    classify=ClassifyViews, detect=DetectViews, segment=SemanticViews, instance=InstanceViews,
)  # fmt: skip
