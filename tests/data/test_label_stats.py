"""Label statistics (the report's labels.png) count what the training split holds."""

from __future__ import annotations

from pathlib import Path

import torch

from recog.data.classify import load_classification
from recog.data.detect import DetectionDataset, _RecordLoader, load_detection
from recog.data.formats.records import DetectionRecord
from recog.data.label_stats import box_labels, class_labels, mask_labels, spread
from recog.data.segment import load_segmentation
from recog.report.facet import REPORT
from recog.tasks.classify import ClassifyTask


def test_class_counts_are_the_training_split_counts():
    splits = load_classification("digits", img_size=8, augment="none")
    task = ClassifyTask(splits.class_names, [0.5] * 3, [0.5] * 3, img_size=8)
    figure = REPORT.of(task).label_figures(task, splits)[0]
    # counted again from the dataset's own samples
    counted = torch.zeros(len(splits.class_names), dtype=torch.int64)
    for i in range(len(splits.train)):
        counted[int(splits.train[i].target.labels)] += 1
    assert figure.kind == "labels" and figure.data["counts"] == counted.tolist()
    assert figure.data["images"] == figure.data["total"] == len(splits.train)
    assert class_labels([2, 0, 2], ["a", "b", "c"]).data["counts"] == [1, 0, 2]


def test_box_sizes_and_centres_are_fractions_of_each_image(tmp_path: Path):
    records = [
        # a 200 x 100 image: one box 50 x 20 centred at (125, 60)
        DetectionRecord(
            tmp_path / "a.jpg", 200, 100, torch.tensor([[100.0, 50, 150, 70]]), torch.tensor([1])
        ),
        # a 100 x 100 image: two boxes, and one record with none
        DetectionRecord(
            tmp_path / "b.jpg",
            100,
            100,
            torch.tensor([[0.0, 0, 10, 10], [50, 50, 100, 100]]),
            torch.tensor([0, 1]),
        ),
        DetectionRecord(
            tmp_path / "c.jpg", 100, 100, torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64)
        ),
    ]
    # no file exists: the statistics read the annotations, not the images
    dataset = DetectionDataset(_RecordLoader(records), len(records), img_size=64, mosaic=1.0)
    data = box_labels(dataset, ["cat", "dog"]).data
    assert data["counts"] == [1, 2] and data["count_of"] == "boxes"
    assert data["box_wh"] == [[0.25, 0.2], [0.1, 0.1], [0.5, 0.5]]
    assert data["box_centres"] == [[0.625, 0.6], [0.05, 0.05], [0.75, 0.75]]


def test_detection_counts_match_the_shapes_scenes():
    splits = load_detection("shapes:12:4", img_size=64, mosaic=1.0)
    data = box_labels(splits.train, splits.class_names).data
    expected = torch.zeros(len(splits.class_names), dtype=torch.int64)
    for i in range(len(splits.train)):
        expected += torch.bincount(splits.train.load(i).labels, minlength=len(splits.class_names))
    assert data["counts"] == expected.tolist() and sum(data["counts"]) == len(data["box_wh"])
    assert all(0 < w <= 1 and 0 < h <= 1 for w, h in data["box_wh"])


def test_mask_areas_are_each_class_share_of_the_labelled_pixels():
    splits = load_segmentation("shapes:6:2", instance=False, img_size=64)
    data = mask_labels(splits.train, splits.class_names).data
    pixels = torch.zeros(len(splits.class_names), dtype=torch.float64)
    holding = torch.zeros(len(splits.class_names), dtype=torch.int64)
    for i in range(len(splits.train)):
        mask = splits.train.load(i).mask.long().flatten()
        found = torch.bincount(mask[mask != 255], minlength=len(splits.class_names))
        pixels += found
        holding += found > 0
    assert data["counts"] == holding.tolist()
    assert torch.allclose(torch.tensor(data["areas"], dtype=torch.float64), pixels / pixels.sum())
    assert abs(sum(data["areas"]) - 1) < 1e-9


def test_spread_bounds_the_read_and_keeps_the_ends():
    assert spread(5, 10) == [0, 1, 2, 3, 4]
    picked = spread(1000, 7)
    assert len(picked) == 7 and picked[0] == 0 and picked[-1] == 999


def test_listed_boxes_are_all_read_and_drawn_scenes_are_capped(tmp_path: Path):
    from recog.data.label_stats import LIMIT_DECODED

    box = torch.tensor([[0.0, 0, 4, 4]])
    records = [
        DetectionRecord(tmp_path / f"{i}.jpg", 8, 8, box, torch.tensor([0])) for i in range(300)
    ]
    listed = box_labels(DetectionDataset(_RecordLoader(records), 300, img_size=8), ["a"]).data
    assert listed["images"] == listed["total"] == 300 and listed["counts"] == [300]
    scenes = load_detection(f"shapes:{LIMIT_DECODED + 100}:2", img_size=64).train
    drawn = box_labels(scenes, ["c", "s", "t", "st", "h"]).data
    assert drawn["images"] == LIMIT_DECODED and drawn["total"] == LIMIT_DECODED + 100
