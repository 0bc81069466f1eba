"""Image/mask pairs and segmentation datasets: encodings, splits, augmentation, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from recog.data.check import mask_report
from recog.data.formats.masks import resolve_classes, split_pairs
from recog.data.segment import (
    load_segmentation,
    load_segmentation_eval,
    semantic_train_transform,
)
from recog.errors import RecogError
from recog.types import IGNORE_INDEX


def make_mask_set(root, n=5, *, size=(40, 32), kind="ids", classes=3):
    """n images with masks: ids (greyscale class ids), palette, or binary (0/255)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
            root / "images" / f"{i}.jpg"
        )
        ids = rng.integers(0, classes, (h, w), dtype=np.uint8)
        if kind == "binary":
            Image.fromarray((ids % 2) * 255).save(root / "masks" / f"{i}.png")
        elif kind == "palette":
            img = Image.frombytes("P", (w, h), ids.tobytes())
            img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
            img.save(root / "masks" / f"{i}.png")
        else:
            Image.fromarray(ids).save(root / "masks" / f"{i}.png")
    return root


def test_class_id_masks_with_yaml_classes_and_fixed_split(tmp_path):
    root = make_mask_set(tmp_path / "d", n=10)
    (root / "data.yaml").write_text("classes: [bg, a, b]\n")
    splits = load_segmentation(str(root), instance=False, img_size=32, val_split=0.2, seed=0)
    assert splits.class_names == ["bg", "a", "b"]
    assert (len(splits.train), len(splits.val)) == (8, 2)
    again = load_segmentation(str(root), instance=False, img_size=32, val_split=0.2, seed=0)
    assert [p.path for p in splits.val] == [p.path for p in again.val]
    sample = splits.train[0]
    assert sample.image.shape == (3, 32, 32) and sample.target.mask.shape == (32, 32)
    val = splits.val[0]
    assert val.image.shape == (3, 32, 40) and val.target.mask.dtype == torch.int64
    assert set(val.target.mask.unique().tolist()) <= {0, 1, 2}


def test_palette_masks_read_indices_and_binary_masks_map_255_to_1(tmp_path):
    root = make_mask_set(tmp_path / "p", n=3, kind="palette")
    splits = load_segmentation(str(root), instance=False, img_size=32, classes="x,y,z")
    assert set(splits.val[0].target.mask.unique().tolist()) <= {0, 1, 2}
    root = make_mask_set(tmp_path / "b", n=3, kind="binary")
    splits = load_segmentation(str(root), instance=False, img_size=32)
    assert splits.class_names == ["background", "foreground"]
    assert set(splits.val[0].target.mask.unique().tolist()) == {0, 1}
    named = load_segmentation(str(root), instance=False, img_size=32, classes="membrane,cell")
    assert named.class_names == ["membrane", "cell"]


def test_ignore_index_is_kept_in_class_id_masks(tmp_path):
    root = make_mask_set(tmp_path / "d", n=2)
    mask = np.array(Image.open(root / "masks" / "0.png"))
    mask[:5] = 255
    Image.fromarray(mask).save(root / "masks" / "0.png")
    ds = load_segmentation_eval(str(root), instance=False, img_size=32, class_names=["a", "b", "c"])
    assert (ds[0].target.mask[:5] == IGNORE_INDEX).all()


def test_mask_of_other_size_is_a_clear_error(tmp_path):
    root = make_mask_set(tmp_path / "d", n=3)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "1.png")
    ds = load_segmentation_eval(str(root), instance=False, img_size=32, class_names=["a", "b", "c"])
    with pytest.raises(RecogError, match=r"1.png: mask is 10x10 but its image 1.jpg is 40x32"):
        ds[1]


def test_mask_value_outside_the_class_list_is_a_clear_error(tmp_path):
    root = make_mask_set(tmp_path / "d", n=3, classes=3)
    splits_ds = load_segmentation_eval(
        str(root), instance=False, img_size=32, class_names=["a", "b"]
    )
    with pytest.raises(
        RecogError, match=r"mask value 2 is not a class id \(classes 0..1, 255 = ignore\)"
    ):
        splits_ds[0]


def test_image_without_mask_is_a_clear_error(tmp_path):
    root = make_mask_set(tmp_path / "d", n=3)
    (root / "masks" / "2.png").unlink()
    with pytest.raises(
        RecogError, match=r"2.jpg: no mask for this image \(expected .*masks/2.png\)"
    ):
        load_segmentation(str(root), instance=False, img_size=32)


def test_rgb_mask_that_is_not_a_palette_is_a_clear_error(tmp_path):
    root = make_mask_set(tmp_path / "d", n=3)
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[..., 0] = 200  # red: not grey, not a palette
    Image.fromarray(rgb).save(root / "masks" / "0.png")
    with pytest.raises(RecogError, match="an RGB mask that is not a palette image"):
        load_segmentation(str(root), instance=False, img_size=32)


def test_train_val_folders_are_used_as_given(tmp_path):
    make_mask_set(tmp_path / "s" / "train", n=4)
    make_mask_set(tmp_path / "s" / "val", n=2)
    train, val, _ = split_pairs(tmp_path / "s", val_split=0.5, seed=0)
    assert (len(train), len(val)) == (4, 2)
    names, decode = resolve_classes(train, tmp_path / "s", None)
    assert names == ["class_0", "class_1", "class_2"] and not decode.binary


def test_mask_report_counts_and_lists_problems(tmp_path):
    root = make_mask_set(tmp_path / "d", n=4, kind="binary")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "masks" / "3.png")
    report = mask_report(root)
    assert report["images"] == 4 and report["encoding"] == "binary 0/255"
    assert len(report["problems"]) == 1 and "mask is 10x10" in report["problems"][0]
    assert abs(sum(report["pixel_fraction"].values()) - 1) < 1e-6


def test_augmentation_moves_mask_with_image_and_jitters_colour_only():
    torch.manual_seed(0)
    image = torch.zeros((3, 48, 48), dtype=torch.uint8)
    image[:, :, :24] = 200  # left half bright
    mask = torch.zeros((48, 48), dtype=torch.uint8)
    mask[:, :24] = 1  # and labelled 1
    aug = semantic_train_transform(img_size=32, augment="strong", elastic=1.0)
    for _ in range(5):
        img, m = aug(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert img.shape == (3, 32, 32) and m.shape == (32, 32)
        assert set(m.unique().tolist()) <= {0, 1, IGNORE_INDEX}
        valid = m != IGNORE_INDEX
        bright = img.float().mean(0) > 60
        # nearly every scored pixel keeps its label next to its own image content
        agree = (bright[valid] == (m[valid] == 1)).float().mean()
        assert agree > 0.9


def test_shapes_semantic_and_instance_splits():
    sem = load_segmentation("shapes:8:4", instance=False, img_size=64)
    assert sem.class_names[0] == "background" and len(sem.class_names) == 6
    assert sem.val[0].target.mask.shape == (64, 64)
    inst = load_segmentation("shapes:8:4", instance=True, img_size=64)
    s = inst.train[0]
    assert s.target.masks.shape[1:] == (64, 64) and len(s.target.boxes) == len(s.target.labels)
    truth = inst.val[0].meta["truth"]
    assert truth.masks.dtype == torch.bool and len(truth.masks) == len(truth.boxes)


def test_coco_polygons_and_rle_become_masks(tmp_path):
    from pycocotools import mask as mask_utils

    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "b.png")
    block = np.zeros((20, 30), np.uint8, order="F")
    block[5:10, 10:20] = 1
    rle = mask_utils.encode(np.asfortranarray(block))
    rle["counts"] = rle["counts"].decode()
    coco = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 30, "height": 20},
            {"id": 2, "file_name": "b.png", "width": 30, "height": 20},
        ],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 7,
                "bbox": [0, 0, 10, 10],
                "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 2,
                "category_id": 3,
                "bbox": [10, 5, 10, 5],
                "segmentation": rle,
                "iscrowd": 0,
            },
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco))
    inst = load_segmentation_eval(str(path), instance=True, img_size=32, class_names=["cat", "dog"])
    truth = [inst[i].meta["truth"] for i in range(2)]
    assert truth[0].labels.tolist() == [1] and truth[1].labels.tolist() == [0]
    assert int(truth[1].masks.sum()) == 50
    assert truth[1].boxes.tolist() == [[10.0, 5.0, 20.0, 10.0]]
    sem = load_segmentation_eval(
        str(path), instance=False, img_size=32, class_names=["background", "cat", "dog"]
    )
    assert set(sem[0].target.mask.unique().tolist()) == {0, 2}
