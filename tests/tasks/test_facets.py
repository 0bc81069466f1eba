"""A FacetTable names what each task gives a feature, and answers a declining task in one
sentence (recog.tasks.facets)."""

from __future__ import annotations

import pytest

from recog.errors import RecogError
from recog.names import TaskName
from recog.tasks.classify import ClassifyTask
from recog.tasks.facets import FacetTable
from recog.tasks.instance import InstanceSegmentTask
from recog.tasks.segment import SegmentTask


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def test_a_task_gives_its_entry_and_one_instance_is_made():
    table = FacetTable("{task} models have no x", classify=lambda: Named("c"))
    assert table.of(TaskName.CLASSIFY).name == "c" and table.of("classify") is table.of(
        ClassifyTask
    )
    assert table.has(ClassifyTask) and not table.has("detect")
    assert table.tasks() == [TaskName.CLASSIFY]


def test_a_task_left_out_declines_in_one_sentence():
    table = FacetTable("{task} models have no x", classify=lambda: Named("c"))
    with pytest.raises(RecogError, match="^detect models have no x$"):
        table.of(TaskName.DETECT)


def test_mask_rcnn_is_found_by_its_class_before_its_name():
    table = FacetTable("{task}: none", segment=lambda: Named("s"), instance=lambda: Named("i"))
    assert table.of(InstanceSegmentTask).name == "i"
    assert table.of(SegmentTask).name == "s" and table.of("segment").name == "s"
    # without an entry of its own it is a segmentation task
    plain = FacetTable("{task}: none", segment=lambda: Named("s"))
    assert plain.of(InstanceSegmentTask).name == "s"
