"""Likely label errors: cleanlab's finders through the doctor's facet, on evidence with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import scene
from PIL import Image

from recog.data.inventory import Entry, Inventory
from recog.doctor.facet import DOCTOR
from recog.metrics.label_issues import detection_issues, mask_iou_outliers
from recog.types import Prediction, TaskName


def test_classification_flags_the_images_the_out_of_fold_model_contradicts():
    rng = np.random.default_rng(0)
    n, flipped = 200, {3, 50, 120, 177}
    truth = np.arange(n) % 2
    given = truth.copy()
    given[list(flipped)] = 1 - given[list(flipped)]
    probs = np.full((n, 2), 0.05)
    probs[np.arange(n), truth] = 0.95  # a model right on every image, so sure of it
    probs += rng.uniform(0, 0.02, probs.shape)
    entries = [
        Entry(__import__("pathlib").Path(f"/d/{i}.jpg"), "train", label=int(g))
        for i, g in enumerate(given)
    ]
    inv = Inventory(
        TaskName.CLASSIFY, "class-folders", entries[0].path.parent, ["ant", "bee"], entries, True
    )
    found, how = DOCTOR.of(TaskName.CLASSIFY).label_findings(
        inv, cross_validated=lambda: probs, predict=None
    )
    assert {int(f.files[0].split("/")[-1].split(".")[0]) for f in found} == flipped
    f = found[0]
    assert f.kind == "label-error" and f.detail["given"] != f.detail["suggested"]
    assert "out-of-fold" in how


def _det(boxes, labels, scores=None):
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    s = np.ones(len(b)) * 0.95 if scores is None else np.asarray(scores)
    return b, np.asarray(labels), s


def test_detection_finds_an_overlooked_and_a_badly_located_box():
    # 12 images of one cat each, annotated and predicted alike; image 3's second cat has no
    # box, image 7's box sits half off its object
    given_b, given_l, pred_b, pred_s, pred_l = [], [], [], [], []
    for i in range(12):
        cat = [20 + i, 20, 80 + i, 90]
        g = [cat]
        p = [cat]
        if i == 3:
            p = [cat, [100, 10, 150, 60]]
        if i == 7:
            g = [[50 + i, 55, 110 + i, 125]]
        gb, gl, _ = _det(g, [0] * len(g))
        pb, pl, ps = _det(p, [0] * len(p), [0.99] * len(p))
        (
            given_b.append(gb),
            given_l.append(gl),
            pred_b.append(pb),
            pred_l.append(pl),
            pred_s.append(ps),
        )
    found = detection_issues(given_b, given_l, pred_b, pred_s, pred_l, num_classes=1)
    assert [(i, k) for i, k, _ in found["overlooked"]] == [(3, 1)]
    assert [i for i, _, _ in found["badloc"]] == [7]
    assert found["swapped"] == []


def test_mask_outliers_are_below_the_fence_and_the_ceiling():
    ious = [0.9, 0.88, 0.91, 0.87, 0.92, 0.2, 0.89, 0.86]
    assert mask_iou_outliers(ious) == [(5, 0.2)]
    # a spread set whose lowest image is still good: not an error
    assert mask_iou_outliers([0.95, 0.7, 0.96, 0.94, 0.95, 0.93]) == []


def test_segmentation_asks_the_run_and_flags_the_mask_it_contradicts(tmp_path):
    root = tmp_path / "masks"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    truth = {}
    for i in range(8):
        m = np.zeros((32, 32), dtype=np.uint8)
        m[4 : 20 + i, 6:26] = 255
        truth[f"m{i}"] = m
        scene(i, (32, 32)).save(root / "images" / f"m{i}.png")
        wrong = 255 - m if i == 5 else m  # image 5's mask painted inverted
        Image.fromarray(wrong, mode="L").save(root / "masks" / f"m{i}.png")
    task = DOCTOR.of(TaskName.SEGMENT)
    inv = task.inventory(str(root), val_split=0.25, seed=0)

    def predict(paths):
        return [
            Prediction(mask=torch.from_numpy((truth[p.stem] > 0).astype(np.int64))) for p in paths
        ]

    found, _ = task.label_findings(
        inv, cross_validated=lambda: pytest.fail("not asked"), predict=predict
    )
    assert [f.files[0].split("/")[-1] for f in found] == ["m5.png"]
    assert found[0].kind == "mask-iou-outlier" and found[0].detail["iou"] == 0.0
    none, why = task.label_findings(inv, cross_validated=lambda: None, predict=None)
    assert none == [] and "--run" in why


@pytest.mark.slow  # suite time: over 40 s on 2 cores
def test_flipped_digit_labels_are_found_by_models_trained_on_the_spot(tmp_path):
    """10% of the training digits moved to another digit's folder: cleanlab on 4-fold
    out-of-fold probabilities of a small cnn finds most of them (about 34 s on 2 cores;
    measured 0.83 recall at 0.92 precision)."""
    from planting import digits_folders

    from recog.doctor import diagnose

    flipped = {str(p) for p in digits_folders(tmp_path / "digits")}
    d = diagnose(str(tmp_path / "digits"), out=tmp_path / "report", fold_steps=150)
    suspects = {f.files[0] for f in d.findings if f.kind == "label-error"}
    hits = len(suspects & flipped)
    assert hits / len(flipped) >= 0.6 and hits / len(suspects) >= 0.5, (hits, len(suspects))
    assert d.result["label_check"]["trusted"] is True
    assert all(
        f.detail["suggested"] != f.detail["given"] for f in d.findings if f.kind == "label-error"
    )


def test_a_run_gives_its_embeddings_to_the_label_probe_and_the_duplicate_check(tmp_path, digits):
    """With --run, one forward pass: a cross-validated linear probe on the run's features."""
    from planting import digits_folders

    from recog.doctor import diagnose

    flipped = {str(p) for p in digits_folders(tmp_path / "digits", limit=600)}
    d = diagnose(str(tmp_path / "digits"), run=digits.run_dir, out=tmp_path / "report")
    assert "logistic regression on the run's embeddings" in d.result["label_check"]["how"]
    assert any("embeddings" in line for line in d.result["checks"])
    suspects = {f.files[0] for f in d.findings if f.kind == "label-error"}
    assert len(suspects & flipped) / len(flipped) >= 0.6
