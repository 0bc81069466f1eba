"""What export and benchmarking ask of a task: whether its input keeps each image's size.

A semantic segmenter predicts on each image at its own size (tiling the big
ones), so its exported graph takes any height and width and any `--img-size`
is timed; the other tasks bring every image to the run's `img_size` (a crop
or a letterbox), so their graphs are fixed at it.  Mask R-CNN's instance task
is named "segment" but letterboxes like a detector: it is named by class.
"""

from __future__ import annotations

from dataclasses import dataclass

from recog.tasks.facets import FacetTable


@dataclass(frozen=True)
class ExportFacet:
    #: whether the task's `prepare` keeps each image's own size (an exported graph's
    #: spatial axes are then dynamic) rather than bringing it to `img_size`
    keeps_image_size: bool


def _fixed_size() -> ExportFacet:
    return ExportFacet(keeps_image_size=False)


def _own_size() -> ExportFacet:
    return ExportFacet(keeps_image_size=True)


EXPORT: FacetTable[ExportFacet] = FacetTable(
    "{task} models cannot be exported",
    classify=_fixed_size, detect=_fixed_size, segment=_own_size, instance=_fixed_size,
)  # fmt: skip
