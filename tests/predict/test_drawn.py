"""`recog predict --save-dir`: files that mirror the inputs, drawings a person can read,
mask PNGs a viewer shows and a program reads back as class ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from serving import segment_run

import recog
from recog.api.results import mirrored_paths
from recog.cli import main
from recog.errors import RecogError
from recog.tasks.drawing import banner, draw_boxes, palette


def test_same_names_in_two_folders_are_both_saved_under_their_folder(spread_detector, tmp_path):
    run, images, _ = spread_detector
    save = tmp_path / "drawn"
    assert main(["predict", str(run), str(images), "--conf", "0.5", "--save-dir", str(save)]) == 0
    inputs = sorted(p.relative_to(images) for p in images.rglob("*.png"))
    assert sorted(p.relative_to(save) for p in save.rglob("*.png")) == inputs
    assert {p.parts[0] for p in inputs} == {"a", "b"}
    for rel in inputs:  # each file is its own input with boxes drawn on it, not a copy
        drawn = np.asarray(Image.open(save / rel).convert("RGB"))
        original = np.asarray(Image.open(images / rel).convert("RGB"))
        assert drawn.shape == original.shape and (drawn != original).any()


def test_two_inputs_that_would_share_a_file_are_refused_before_anything_is_written(
    spread_detector, tmp_path, capsys
):
    run, _, _ = spread_detector
    folder = tmp_path / "in"
    folder.mkdir()
    pixels = np.full((64, 64, 3), 90, dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "x.png")
    Image.fromarray(pixels).save(folder / "x.jpg")
    save = tmp_path / "drawn"
    assert main(["predict", str(run), str(folder), "--save-dir", str(save)]) == 2
    err = capsys.readouterr().err
    assert "both would be drawn to x.png" in err and err.count("\n") == 1
    assert not save.exists()


def test_mirrored_paths_keep_the_tree_below_the_common_folder():
    got = mirrored_paths(["/d/a/img.jpg", "/d/b/img.jpg", "/d/b/c/z.webp"])
    assert [str(p) for p in got] == ["a/img.png", "b/img.png", "b/c/z.png"]
    assert [str(p) for p in mirrored_paths(["/only/one.jpg"])] == ["one.png"]
    urls = mirrored_paths(["s3://bucket/x/1.jpg", "s3://bucket/y/1.jpg"])
    assert [str(p) for p in urls] == ["x/1.png", "y/1.png"]
    with pytest.raises(RecogError, match="both would be drawn to a/img.png"):
        mirrored_paths(["/d/a/img.jpg", "/d/a/img.png", "/d/b/other.jpg"])


def test_mask_pngs_are_palette_images_holding_the_class_ids(tmp_path_factory, tmp_path):
    run = segment_run(tmp_path_factory)
    rec = recog.load(run)
    images = tmp_path / "in"
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (images / folder).mkdir(parents=True)
        img = rng.integers(0, 60, (48, 64, 3), dtype=np.uint8)
        img[8:30, 10:40] = 220
        Image.fromarray(img).save(images / folder / "s.png")
    save = tmp_path / "drawn"
    assert main(["predict", str(run), str(images), "--save-dir", str(save)]) == 0
    colours = palette(len(rec.class_names))
    for folder in ("a", "b"):
        (pred,) = rec.predict([str(images / folder / "s.png")])
        mask = Image.open(save / folder / "s_mask.png")
        assert mask.mode == "P"
        assert np.array_equal(np.asarray(mask), pred.mask.numpy())
        table = mask.getpalette()
        for k, colour in enumerate(colours):  # class k shows in its drawing colour
            assert tuple(table[3 * k : 3 * k + 3]) == colour
        assert (save / folder / "s.png").is_file()


def _text_rows(image: torch.Tensor) -> int:
    """Rows holding white pixels (the label text on a dark class colour, on black)."""
    white = (image == 255).all(0)
    rows = white.any(1).nonzero().flatten()
    return int(rows.max() - rows.min() + 1) if len(rows) else 0


def test_labels_grow_with_the_image_and_each_class_has_its_colour():
    heights = {}
    for side in (400, 1944):
        image = torch.zeros((3, side, side), dtype=torch.uint8)
        box = torch.tensor([[side * 0.1, side * 0.2, side * 0.6, side * 0.7]])
        heights[side] = _text_rows(draw_boxes(image, box, torch.tensor([0]), ["cat 0.91"], 3))
    assert heights[1944] >= 40 and heights[1944] > 3 * heights[400] > 0
    image = torch.zeros((3, 200, 200), dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 10.0, 60.0, 60.0], [100.0, 100.0, 190.0, 190.0]])
    drawn = draw_boxes(image, boxes, torch.tensor([0, 1]), None, 3)
    colours = palette(3)
    assert colours[0] != colours[1]
    assert tuple(drawn[:, 35, 10].tolist()) == colours[0]  # left edges, halfway down
    assert tuple(drawn[:, 145, 100].tolist()) == colours[1]


def test_the_classification_banner_is_sized_to_the_image():
    for side, least in ((64, 11), (2592, 80)):
        drawn = banner(torch.full((3, side, side), 128, dtype=torch.uint8), "cat 93%")
        band = (drawn[:, :, side // 2] == 0).all(0)  # the black band, down the middle column
        assert int(band.nonzero().max()) + 1 >= least
