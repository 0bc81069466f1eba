"""Each task's row in `recog predict --out`: what the task's `OUTPUT.columns` writes is the prediction."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import recog
from recog.batch import job_settings, list_inputs, open_sink, predict_stream


def _stream(rec, folder, out):
    names = list_inputs([str(folder)])
    sink = open_sink(out, job_settings(rec, top_k=5, batch_size=4, reject=True),
                     resume=False, batch_size=4)  # fmt: skip
    predict_stream(rec, names, sink, batch_size=4, num_workers=0)
    return names, pq.read_table(out).to_pylist()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    rng = np.random.default_rng(1)
    for i in range(6):
        size = (64 + 8 * i, 64)  # different sizes: the segmenter batches equal ones together
        img = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
        img[10:40, 10 + i : 40 + i] = 220
        Image.fromarray(img).save(folder / f"s{i}.png")
    return folder


def test_segment_rows_hold_each_class_mask_as_rle(shapes, tmp_path):
    rec = recog.train("shapes:16:8", "unet", epochs=1, img_size=64, batch_size=8,
                      out=str(tmp_path / "unet"))  # fmt: skip
    names, rows = _stream(rec, shapes, tmp_path / "seg.parquet")
    for name, row in zip(names, rows, strict=True):
        (pred,) = rec.predict([name])
        mask = pred.mask.numpy()
        assert row["task"] == "segment" and row["boxes"] is None
        assert row["labels"] == [rec.class_names[k] for k in np.unique(mask)]
        for label, region, fraction in zip(row["labels"], row["masks"], row["scores"], strict=True):
            k = rec.class_names.index(label)
            decoded = mask_utils.decode({"size": region["size"], "counts": region["counts"]})
            assert (decoded.astype(bool) == (mask == k)).all()
            assert fraction == pytest.approx((mask == k).mean())


def test_detect_rows_hold_the_shown_boxes(shapes, tmp_path):
    rec = recog.train("shapes:16:8", "yolo_n", epochs=1, img_size=64, batch_size=8,
                      out=str(tmp_path / "yolo"))  # fmt: skip
    rec.task.display_threshold = 0.0  # an untrained detector scores low: show every box
    names, rows = _stream(rec, shapes, tmp_path / "det.parquet")
    for name, row in zip(names, rows, strict=True):
        record = rec.task.to_record(rec.predict([name])[0])
        assert row["masks"] is None
        assert row["labels"] == [d["label"] for d in record["detections"]]
        assert row["scores"] == pytest.approx([d["score"] for d in record["detections"]], abs=1e-6)
        assert np.allclose(np.array(row["boxes"]).reshape(-1, 4),
                           np.array([d["box"] for d in record["detections"]]).reshape(-1, 4), atol=0.01)  # fmt: skip
    assert sum(len(r["boxes"]) for r in rows) > 0


def test_instance_rows_hold_each_shown_mask_as_rle():
    import torch

    from recog.api.facet import OUTPUT
    from recog.batch.rows import make_row, to_table
    from recog.tasks.instance import InstanceSegmentTask
    from recog.types import Prediction

    task = InstanceSegmentTask(["cell", "nucleus"], [0.5] * 3, [0.5] * 3, img_size=64,
                               display_threshold=0.5)  # fmt: skip
    masks = torch.zeros(3, 20, 30, dtype=torch.bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 10:18, 0:30] = True
    masks[2, 0:5, 25:30] = True
    pred = Prediction(
        boxes=torch.tensor([[3.0, 2, 9, 8], [0, 10, 30, 18], [25, 0, 30, 5]]),
        labels=torch.tensor([0, 1, 1]),
        masks=masks,
        scores=torch.tensor([0.9, 0.7, 0.2]),  # the third is below the display threshold
    )
    columns = OUTPUT.of(task).columns(task, pred)
    assert columns["labels"] == ["cell", "nucleus"]
    assert columns["scores"] == pytest.approx([0.9, 0.7])
    assert columns["boxes"] == [[3.0, 2.0, 9.0, 8.0], [0.0, 10.0, 30.0, 18.0]]
    for region, expected in zip(columns["masks"], masks[:2], strict=True):
        assert region["size"] == [20, 30]
        decoded = mask_utils.decode({"size": region["size"], "counts": region["counts"]})
        assert (decoded.astype(bool) == expected.numpy()).all()
    table = to_table(
        [make_row("a.png", task="segment", model="mask_rcnn", run="r", columns=columns)]
    )
    assert table.column("masks").to_pylist()[0][1]["label"] == "nucleus"
