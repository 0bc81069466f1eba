"""What the data doctor asks of each task (`DOCTOR`), and each task's answer.

The doctor reads a dataset the way training would (`inventory`: every image
with its split and annotation), checks the annotations themselves
(`annotation_findings`), looks for likely label errors (`label_findings`,
`recog.doctor.label_errors`) and writes the cleaned copy (`write_fixed`).
What it reads and writes per task lives in `recog.data` (`inventory`,
`hygiene`, `fixed_copy`); this table says which of those each task's data
takes.  The doctor asks by task name: it runs before any model exists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from recog.data.fixed_copy import write_class_folders, write_detection_copy, write_mask_folders
from recog.data.hygiene import classification_findings, detection_findings, segmentation_findings
from recog.data.inventory import (
    Entry,
    Finding,
    Inventory,
    classification_inventory,
    detection_inventory,
    segmentation_inventory,
)
from recog.doctor.label_errors import (
    LabelFinder,
    classify_label_findings,
    detect_label_findings,
    segment_label_findings,
)
from recog.errors import RecogError
from recog.names import TaskName
from recog.tasks.facets import FacetTable


@dataclass(frozen=True)
class DoctorFacet:
    """What `recog data doctor` asks of a task's data: the `recog.data` functions its
    format takes, and its label-error finder.

    read: the inventory builder, `(spec, *, val_split, seed, **options)`;
    options: which of the doctor's `classes` and `group_by` it takes;
    annotation_findings: what is wrong with the annotations themselves (no model asked);
    label_findings: likely label errors and one line saying how they were found (or why
      not), `(inventory, *, cross_validated, predict)` (`recog.doctor.label_errors`);
    write_fixed: `--fix DIR`, `(inventory, kept, out, drop_boxes)`: the kept images (and
      their annotations, less `drop_boxes`) under `out`; the path written.
    """

    read: Callable[..., Inventory]
    options: tuple[str, ...]
    annotation_findings: Callable[[Inventory], list[Finding]]
    label_findings: LabelFinder
    write_fixed: Callable[[Inventory, Sequence[Entry], Path, dict[str, list[int]]], Path]

    def inventory(
        self,
        spec: str,
        *,
        val_split: float,
        seed: int,
        classes: str | None = None,
        group_by: str = "",
    ) -> Inventory:
        """Every image of the data with its split and annotation, as training would read it."""
        if group_by and "group_by" not in self.options:
            raise RecogError(f"--group-by: {spec}: grouped splits are for classification and "
                             "detection data")  # fmt: skip
        given = {"classes": classes, "group_by": group_by}
        return self.read(
            spec, val_split=val_split, seed=seed, **{k: given[k] for k in self.options}
        )


def _whole_images(write: Callable[[Inventory, Sequence[Entry], Path], Path]) -> Callable[..., Path]:
    """A copy writer that drops whole images only: the annotations have no boxes to drop."""
    return lambda inventory, kept, out, drop_boxes: write(inventory, kept, out)


#: each task's row: reader, its options, annotation checks, label finder, cleaned copy
_ROWS = {
    TaskName.CLASSIFY: (classification_inventory, ("group_by",), classification_findings,
                        classify_label_findings, _whole_images(write_class_folders)),
    TaskName.DETECT: (detection_inventory, ("group_by",), detection_findings,
                      detect_label_findings, write_detection_copy),
    TaskName.SEGMENT: (segmentation_inventory, ("classes",), segmentation_findings,
                       segment_label_findings, _whole_images(write_mask_folders)),
}  # fmt: skip

DOCTOR: FacetTable[DoctorFacet] = FacetTable(
    "{task}: the data doctor does not read this task's data",
    **{str(task): partial(DoctorFacet, *row) for task, row in _ROWS.items()},
)  # fmt: skip
