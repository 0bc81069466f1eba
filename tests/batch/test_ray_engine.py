"""`recog predict --engine ray`: the local engine's predictions, through Ray Data on a local cluster."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from helpers import run_cli
from test_predict_stream import _images


@pytest.mark.slow  # suite time: over 40 s on 2 cores
def test_ray_engine_matches_the_local_engine_on_2000_images(digits, tmp_path):
    pytest.importorskip("ray.data", reason="Ray is an extra: pip install 'recog[ray]'")
    images = _images(tmp_path / "images", 2000)
    run = str(digits.run_dir)
    local, ray_out = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    proc = run_cli("predict", run, str(images), "--out", str(local))
    assert proc.returncode == 1, proc.stderr  # two unreadable files: their rows say why
    proc = run_cli("predict", run, str(images), "--out", str(ray_out), "--engine", "ray",
                   "--num-workers", "2", timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert ray_out.is_dir() and len(list(ray_out.glob("*.parquet"))) >= 1  # one file per block
    a = pq.read_table(local).drop(["time"])
    b = pq.read_table(ray_out).drop(["time"])
    assert b.schema.equals(a.schema.remove_metadata())
    assert b.column("path").to_pylist() == a.column("path").to_pylist()  # order kept
    rows_a, rows_b = a.to_pylist(), b.to_pylist()
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra["labels"] == rb["labels"] and ra["error"] == rb["error"]
        if ra["scores"]:
            assert ra["scores"] == pytest.approx(rb["scores"], abs=1e-5)
    assert sum(r["error"] is not None for r in rows_b) == 2


def test_ray_engine_refuses_what_it_cannot_do(digits, tmp_path):
    from recog.cli import main

    predict = ["predict", str(digits.run_dir), str(tmp_path)]
    assert main([*predict, "--engine", "ray"]) == 2
    assert (
        main([*predict, "--out", str(tmp_path / "o.parquet"), "--engine", "ray", "--resume"]) == 2
    )
    assert main([*predict, "--out", str(tmp_path / "o.jsonl"), "--engine", "ray"]) == 2
    assert main([*predict, "--out", str(tmp_path / "o.parquet"), "--ray-address", "x:1"]) == 2
