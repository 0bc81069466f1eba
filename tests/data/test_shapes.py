"""The built-in shapes scenes: deterministic, consistent boxes, masks and semantic mask."""

from __future__ import annotations

import torch

from recog.data.formats.shapes import ShapesConfig, render_scene


def test_scene_is_a_pure_function_of_seed_and_index():
    a, b = render_scene(5, seed=1), render_scene(5, seed=1)
    assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(render_scene(5, seed=2).image, a.image)


def test_boxes_masks_and_semantic_mask_agree():
    cfg = ShapesConfig(img_size=96, max_objects=6)
    for i in range(30):
        s = render_scene(i, config=cfg)
        n = len(s.labels)
        assert s.image.shape == (3, 96, 96) and s.image.dtype == torch.uint8
        assert s.masks.shape == (n, 96, 96) and s.boxes.shape == (n, 4)
        # instance masks are disjoint (occlusion removes hidden pixels)
        assert int(s.masks.sum(0).max()) <= 1
        for k in range(n):
            ys, xs = torch.nonzero(s.masks[k], as_tuple=True)
            assert s.boxes[k].tolist() == [
                xs.min().item(),
                ys.min().item(),
                xs.max().item() + 1,
                ys.max().item() + 1,
            ]
            assert (s.mask[s.masks[k]] == s.labels[k] + 1).all()
        assert (s.mask[~s.masks.any(0)] == 0).all()


def test_classes_are_configurable():
    cfg = ShapesConfig(classes=("circle", "star"), max_objects=3)
    labels = torch.cat([render_scene(i, config=cfg).labels for i in range(40)])
    assert set(labels.tolist()) == {0, 1}
