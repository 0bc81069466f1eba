"""A tiny detector whose scores spread over (0, 1), and images of its task in two folders.

A 1-epoch yolo_n on generated shapes scores every candidate at its prior, 0.0025
(the class bias `init_bias` sets), which no threshold can tell apart.  Its class
head's last convolutions are replaced by seeded random weights (x20, bias 0), so
the same real network, decoder and NMS give scores from about 0.1 to 0.8: what
thresholds are tested on.  The images are the run's own validation images (64 px),
written as a/img{i}.png and b/img{i}.png (the same names in both), with their
ground-truth boxes.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session")
def spread_detector(tmp_path_factory):
    import recog
    from recog import io as rio

    root = tmp_path_factory.mktemp("predict-det")
    rec = recog.train("shapes:16:8", "yolo_n", epochs=1, img_size=64, batch_size=8,
                      out=str(root / "yolo"))  # fmt: skip
    weights = rec.run_dir / "model.safetensors"
    state = rio.load_weights(weights)
    g = torch.Generator().manual_seed(0)
    for name, value in state.items():
        last_conv = name.startswith("head.cls.") and value.ndim == 4 and value.shape[-1] == 1
        if last_conv:
            state[name] = torch.randn(value.shape, generator=g) * 20.0
            state[name.replace(".weight", ".bias")] = torch.zeros(value.shape[0])
    rio.save_weights(weights, state, {"model": "yolo_n", "task": "detect"})
    images = root / "images"
    dataset = recog.load(rec.run_dir)._dataset(None)
    truth = {}
    for i in range(6):
        sample = dataset[i]
        path = images / ("a" if i % 2 else "b") / f"img{i // 2}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sample.image.permute(1, 2, 0).numpy()).save(path)
        truth[str(path)] = sample.meta["truth"]
    return rec.run_dir, images, truth
