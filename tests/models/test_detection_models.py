"""The detectors the issue asked for are registered.

Every detector's losses in training, boxes in eval and round trip: tests/test_every_model.py.
"""

from __future__ import annotations

from recog.models.factory import list_models

DETECTORS = list_models("detect")


def test_registry_has_the_issue_detectors():
    assert {"yolo_n", "yolo_s", "ssdlite", "ssd300", "faster_rcnn", "faster_rcnn_mobilenet"} <= set(
        DETECTORS
    )
