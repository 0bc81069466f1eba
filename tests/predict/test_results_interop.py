"""What a prediction hands other tools: supervision, pandas, COCO results, a drawing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import recog
from recog.api.results import Result, coco_ids, to_coco, to_df
from recog.cli import main
from recog.errors import RecogError


def _predict(spread_detector, **kw):
    run, images, truth = spread_detector
    rec = recog.load(run)
    files = sorted(str(p) for p in images.rglob("*.png"))
    return rec, files, truth, rec.predict(files, **kw)


def test_a_prediction_knows_its_path_and_classes(spread_detector):
    rec, files, _, preds = _predict(spread_detector, conf=0.5)
    assert [p.path for p in preds] == files
    assert all(isinstance(p, Result) and p.class_names == rec.class_names for p in preds)
    record = preds[0].to_dict()
    assert record["path"] == files[0]
    assert record["names"] == [rec.class_names[int(c)] for c in preds[0].labels]
    pixels = torch.from_numpy(np.asarray(Image.open(files[0]).convert("RGB")).copy())
    (in_memory,) = rec.predict(pixels.permute(2, 0, 1), conf=0.5)  # a tensor, not a file
    assert in_memory.path is None  # batched alone: the same boxes to float rounding
    assert set(in_memory.to_dict()) == {"boxes", "labels", "scores", "names"}
    assert torch.allclose(in_memory.boxes, preds[0].boxes, atol=1e-3)


def test_to_supervision_round_trips_the_boxes(spread_detector):
    rec, _, _, preds = _predict(spread_detector, conf=0.5)
    for pred in preds:
        det = pred.to_supervision()
        assert len(det) == len(pred.scores) > 0
        assert np.array_equal(det.xyxy, pred.boxes.numpy())
        assert np.array_equal(det.confidence, pred.scores.numpy())
        assert np.array_equal(det.class_id, pred.labels.numpy())
        assert list(det.data["class_name"]) == [rec.class_names[int(c)] for c in pred.labels]


def test_to_df_has_one_row_per_box_with_the_documented_columns(spread_detector, digits):
    _, _, _, preds = _predict(spread_detector, conf=0.5)
    df = to_df(preds)
    assert list(df.columns) == ["path", "label", "score", "x1", "y1", "x2", "y2"]
    assert len(df) == sum(len(p.scores) for p in preds)
    first = preds[0]
    rows = df[df.path == first.path]
    assert np.allclose(rows[["x1", "y1", "x2", "y2"]].to_numpy(), first.boxes.numpy(), atol=0.01)
    assert np.allclose(rows.score.to_numpy(), first.scores.numpy(), atol=1e-6)
    images = torch.randint(0, 255, (3, 3, 32, 32), dtype=torch.uint8)
    classified = to_df(digits.predict(images))
    assert list(classified.columns) == ["path", "label", "score", "top_k"] and len(classified) == 3
    assert list(classified.label) == [digits.class_names[int(p.labels)]
                                      for p in digits.predict(images)]  # fmt: skip


def _ground_truth(files, truth, class_names):
    """A COCO ground truth of the same images, ids as `to_coco` counts them (from 1)."""
    images, annotations = [], []
    for image_id, path in enumerate(files, start=1):
        images.append({"id": image_id, "file_name": path, "width": 64, "height": 64})
        for box, label in zip(truth[path].boxes.tolist(), truth[path].labels.tolist(),
                              strict=True):  # fmt: skip
            x1, y1, x2, y2 = box
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": label + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]}  # fmt: skip
    gt.createIndex()
    return gt


def test_coco_results_load_against_a_ground_truth_of_the_same_images(spread_detector, capsys):
    rec, files, truth, preds = _predict(spread_detector, conf=0.3)
    results = to_coco(preds)
    assert len(results) == sum(len(p.scores) for p in preds)
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"}
    gt = _ground_truth(files, truth, rec.class_names)
    dt = gt.loadRes([dict(r) for r in results])  # loadRes adds keys to what it is given
    assert len(dt.getAnnIds()) == len(results)
    first = preds[0]
    x1, y1, x2, y2 = first.boxes[0].tolist()
    ann = dt.loadAnns(dt.getAnnIds(imgIds=[1]))[0]
    assert np.allclose(ann["bbox"], [x1, y1, x2 - x1, y2 - y1], atol=1e-3)
    evaluator = COCOeval(gt, dt, "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert 0.0 <= evaluator.stats[0] <= 1.0  # matched against the truth: a real mAP, not -1
    # the CLI's --format coco is the same list
    run, images, _ = spread_detector
    capsys.readouterr()  # pycocotools' own prints
    assert main(["predict", str(run), str(images), "--conf", "0.3", "--format", "coco"]) == 0
    assert json.loads(capsys.readouterr().out) == results


def _evaluate(gt, results):
    evaluator = COCOeval(gt, gt.loadRes([dict(r) for r in results]), "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


def test_coco_results_take_the_ids_of_an_existing_ground_truth(spread_detector, capsys, tmp_path):
    rec, files, truth, preds = _predict(spread_detector, conf=0.3)
    run, images, _ = spread_detector
    default = _ground_truth(files, truth, rec.class_names)
    # the same truth as another tool writes it: its own image ids, file names relative to
    # the image folder (a/img0.png and b/img0.png), category ids neither from 1 nor in order
    cat_id = {name: 40 - 7 * k for k, name in enumerate(rec.class_names)}
    data = {
        "images": [{**im, "id": 1000 + 3 * im["id"], "file_name": Path(im["file_name"]).relative_to(images).as_posix()}
                   for im in default.dataset["images"]],
        "annotations": [{**a, "image_id": 1000 + 3 * a["image_id"],
                         "category_id": cat_id[rec.class_names[a["category_id"] - 1]]}
                        for a in default.dataset["annotations"]],
        "categories": [{"id": cat_id[n], "name": n} for n in reversed(rec.class_names)],
    }  # fmt: skip
    gt_file = tmp_path / "instances_val.json"
    gt_file.write_text(json.dumps(data))
    image_ids, category_ids = coco_ids(gt_file)
    results = to_coco(preds, image_ids, category_ids)
    by_file = {Path(f).relative_to(images).as_posix(): i for i, f in enumerate(files)}
    ids = [image_ids[name] for name in sorted(by_file, key=by_file.get)]
    assert [r["image_id"] for r in results] == [
        ids[i] for i, p in enumerate(preds) for _ in range(len(p.scores))
    ]  # each box under its own file's id
    assert {r["category_id"] for r in results} <= set(cat_id.values())
    other = COCO()
    other.dataset = data
    other.createIndex()
    # the same boxes against the same truth: the same numbers, whatever the ids
    assert np.allclose(_evaluate(other, results), _evaluate(default, to_coco(preds)))
    # the CLI reads the same file
    capsys.readouterr()
    args = ["predict", str(run), str(images), "--conf", "0.3", "--format", "coco"]
    assert main([*args, "--coco-gt", str(gt_file)]) == 0
    assert json.loads(capsys.readouterr().out) == results
    # refused in one line: a file that is not COCO, and --coco-gt without --format coco
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    assert main([*args, "--coco-gt", str(bad)]) == 2
    assert main(["predict", str(run), str(images), "--coco-gt", str(gt_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and f"{bad}: not a COCO ground truth" in err[0]
    assert "--format coco" in err[1]
    # a class the file does not name is refused, not given a made-up id
    with pytest.raises(RecogError, match="not among the category ids"):
        to_coco(preds, image_ids, {rec.class_names[0]: 5})


def test_plot_and_save_draw_what_the_task_draws(spread_detector, tmp_path):
    rec, files, _, preds = _predict(spread_detector, conf=0.5)
    pred = preds[0]
    plotted = pred.plot()
    expected = rec.task.draw(torch.from_numpy(np.array(Image.open(files[0]).convert("RGB")))
                             .permute(2, 0, 1), pred)  # fmt: skip
    assert plotted.shape == (64, 64, 3) and plotted.dtype == np.uint8
    assert np.array_equal(plotted, expected.permute(1, 2, 0).numpy())
    out = pred.save(tmp_path / "x" / "drawn.png")
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), plotted)


def test_a_semantic_mask_becomes_one_detection_per_class_present(tmp_path_factory):
    from serving import segment_run

    rec = recog.load(segment_run(tmp_path_factory))
    image = torch.randint(0, 60, (3, 48, 64), dtype=torch.uint8)
    image[:, 8:30, 10:40] = 220
    (pred,) = rec.predict(image)
    det = pred.to_supervision()
    present = sorted(int(k) for k in pred.mask.unique())
    assert list(det.class_id) == present and det.confidence is None
    for k, mask, box in zip(present, det.mask, det.xyxy, strict=True):
        assert np.array_equal(mask, (pred.mask == k).numpy())
        ys, xs = np.nonzero(mask)
        assert list(box) == [xs.min(), ys.min(), xs.max(), ys.max()]
    assert list(det.data["class_name"]) == [rec.class_names[k] for k in present]
