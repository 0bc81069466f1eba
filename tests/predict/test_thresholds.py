"""`--conf`, `--iou`, `--max-det`: one selection (`Task.select`) for the CLI, the API and the server.

On a detector whose scores spread over (0, 1) (conftest.py), the boxes kept at a
threshold are exactly those scoring at least it among everything kept at 0.
"""

from __future__ import annotations

import json

import pytest
import torch

import recog
from recog.cli import main


def _files(images):
    return sorted(str(p) for p in images.rglob("*.png"))


def test_conf_keeps_exactly_the_boxes_scoring_at_least_it(spread_detector):
    run, images, _ = spread_detector
    rec = recog.load(run)
    files = _files(images)
    everything = rec.predict(files, conf=0.0)
    scores = torch.cat([p.scores for p in everything])
    assert scores.min() < 0.5 < scores.max()  # the thresholds below cut the set, not trivially
    median = float(scores.median())
    for conf in (0.5, median):
        kept = rec.predict(files, conf=conf)
        for all_boxes, some in zip(everything, kept, strict=True):
            above = all_boxes.scores >= conf
            assert len(some.scores) == int(above.sum())
            assert torch.equal(some.boxes, all_boxes.boxes[above])
        assert 0 < sum(len(p.scores) for p in kept) < len(scores)
    # the default is the display threshold, 0.25, stated in --help
    default = rec.predict(files)
    assert [len(p.scores) for p in default] == [int((p.scores >= 0.25).sum()) for p in everything]


def test_max_det_and_iou_only_remove_boxes(spread_detector):
    run, images, _ = spread_detector
    rec = recog.load(run)
    files = _files(images)
    base = rec.predict(files, conf=0.0)
    assert all(len(p.scores) <= 1 for p in rec.predict(files, conf=0.0, max_det=1))
    top1 = rec.predict(files, conf=0.0, max_det=1)
    assert [float(p.scores[0]) for p in top1] == [float(p.scores.max()) for p in base]
    loose, tight = rec.predict(files, conf=0.0, iou=0.7), rec.predict(files, conf=0.0, iou=0.1)
    counts = [(len(b.scores), len(lo.scores), len(t.scores))
              for b, lo, t in zip(base, loose, tight, strict=True)]  # fmt: skip
    assert all(t <= lo <= b for b, lo, t in counts)
    assert sum(t for _, _, t in counts) < sum(b for b, _, _ in counts)  # overlaps were removed


def _cli_counts(capsys, run, images, *flags):
    assert main(["predict", str(run), str(images), "--format", "json", *flags]) == 0
    records = json.loads(capsys.readouterr().out)
    return {r["path"]: len(r["detections"]) for r in records}


def test_cli_flags_select_as_the_api_does(spread_detector, capsys):
    run, images, _ = spread_detector
    rec = recog.load(run)
    everything = {p.path: p for p in rec.predict(_files(images), conf=0.0)}
    at_half = _cli_counts(capsys, run, images, "--conf", "0.5")
    assert at_half == {k: int((p.scores >= 0.5).sum()) for k, p in everything.items()}
    assert max(_cli_counts(capsys, run, images, "--conf", "0", "--max-det", "1").values()) == 1
    loose = _cli_counts(capsys, run, images, "--conf", "0")
    tight = _cli_counts(capsys, run, images, "--conf", "0", "--iou", "0.1")
    assert all(tight[k] <= loose[k] for k in loose) and sum(tight.values()) < sum(loose.values())


def test_out_of_range_and_meaningless_options_are_refused_in_one_line(spread_detector, digits,
                                                                      capsys):  # fmt: skip
    run, images, _ = spread_detector
    assert main(["predict", str(run), str(images), "--conf", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == "recog: error: --conf 1.5: must be in [0, 1]"
    assert main(["predict", str(run), str(images), "--max-det", "0"]) == 2
    assert "--max-det 0: must be 1 or more" in capsys.readouterr().err
    assert main(["val", str(digits.run_dir), "--iou", "0.5"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("recog: error: --iou: a classifier finds no boxes") and err.count("\n") == 1
    )


def test_classification_conf_lists_only_classes_reaching_it(digits):
    images = torch.randint(
        0, 255, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    plain = digits.predict(images)
    chosen = digits.predict(images, conf=0.2)
    assert all(len(digits.task.to_record(p, top_k=10)["top_k"]) == 10 for p in plain)
    for p, c in zip(plain, chosen, strict=True):
        record = digits.task.to_record(c, top_k=10)
        assert len(record["top_k"]) < 10  # ten probabilities cannot all reach 0.2
        assert record["label"] == digits.class_names[int(p.labels)]  # the answer stays
        listed = [t["score"] for t in record["top_k"]]
        assert listed == [round(float(s), 6) for s in p.scores.sort(descending=True).values
                          if s >= 0.2]  # fmt: skip


def test_val_records_the_selection_it_measured_with(spread_detector, tmp_path, capsys):
    run, _, _ = spread_detector
    out = tmp_path / "val"
    assert main(["val", str(run), "--conf", "0.5", "--max-det", "3", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["selection"] == {"conf": 0.5, "max_det": 3}
    assert "selection" not in recog.load(run).evaluate()


def test_api_parameters_select_per_request(spread_detector, tmp_path):
    from fastapi.testclient import TestClient

    from recog.serve import ServeConfig, create_app

    run, images, _ = spread_detector
    rec = recog.load(run)
    path = _files(images)[0]
    (everything,) = rec.predict([path], conf=0.0)
    app = create_app({"det": rec}, ServeConfig(db_url=f"sqlite:///{tmp_path / 'h.db'}",
                                               warm_up=False, selection={"conf": 0.0}))  # fmt: skip
    with TestClient(app) as client:

        def count(**params):
            with open(path, "rb") as f:
                reply = client.post("/v1/predict", params=params, files={"file": f})
            assert reply.status_code == 200, reply.text
            return len(reply.json()["result"]["detections"])

        assert count(conf=0.5) == int((everything.scores >= 0.5).sum())
        assert count() == len(everything.scores)  # the server's --conf 0 when a request names none
        assert count(max_det=1) == 1
        assert count(iou=0.1) < count()
        with open(path, "rb") as f:
            bad = client.post("/v1/predict", params={"conf": 2}, files={"file": f})
        assert bad.status_code == 422


def test_a_server_option_a_model_cannot_use_is_refused_at_start(digits):
    from recog.errors import RecogError
    from recog.serve import ServeConfig, create_app

    with pytest.raises(RecogError, match="^digits: --iou: a classifier finds no boxes"):
        create_app({"digits": digits}, ServeConfig(db_url="sqlite://", selection={"iou": 0.5}))


def test_keep_all_is_every_candidate_unselected(spread_detector):
    run, images, _ = spread_detector
    rec = recog.load(run)
    files = _files(images)
    raw = rec.predict(files, keep_all=True)
    assert all(p.conf is None for p in raw)  # drawn at the display threshold, 0.25
    assert [len(p.scores) for p in raw] == [len(p.scores) for p in rec.predict(files, conf=0.0)]
    assert float(torch.cat([p.scores for p in raw]).min()) < 0.25
    with pytest.raises(recog.RecogError, match="keep_all"):
        rec.predict(files, keep_all=True, conf=0.5)


@pytest.mark.slow  # a local Ray cluster starts: ~30 s on 2 cores
def test_ray_engine_selects_as_the_local_engine_does(spread_detector, tmp_path):
    pytest.importorskip("ray.data", reason="Ray is an extra: pip install 'recog[ray]'")
    import pyarrow.parquet as pq
    from helpers import run_cli

    run, images, _ = spread_detector
    flags = ["--conf", "0.45", "--max-det", "3"]
    local, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    proc = run_cli("predict", str(run), str(images), "--out", str(local), *flags)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("predict", str(run), str(images), "--out", str(ray_out), *flags,
                   "--engine", "ray", "--num-workers", "1", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    a = pq.read_table(local).drop(["time"]).to_pylist()
    b = pq.read_table(ray_out).drop(["time"]).to_pylist()
    assert [r["path"] for r in a] == [r["path"] for r in b]
    counts = [len(r["scores"]) for r in a]
    assert max(counts) <= 3 and sum(counts) > 0  # the selection reached the rows
    for ra, rb in zip(a, b, strict=True):
        assert ra["labels"] == rb["labels"]
        assert ra["scores"] == pytest.approx(rb["scores"], abs=1e-5)
        assert min(ra["scores"], default=1.0) >= 0.45
