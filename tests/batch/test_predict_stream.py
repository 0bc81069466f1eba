"""Streaming `recog predict --out`: one row per image, resumable after a kill, every input kind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import run_cli
from PIL import Image

from recog.batch.writer import PART_ROWS


def _images(folder: Path, n: int, *, seed: int = 0, bad: bool = True) -> Path:
    """n small JPEG/PNG images of varied size (and, with `bad`, two that cannot be read)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        h, w = (int(v) for v in rng.integers(20, 48, 2))
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:05d}.{'png' if i % 3 else 'jpg'}")
    if bad:
        (folder / "00003.5.png").write_bytes(b"")  # empty, sorts beside 00003
        (folder / "00100.5.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return folder


def _table(path: Path) -> pa.Table:
    """The output without `time` (when each row was written), the rest must match."""
    return pq.read_table(path).drop(["time"])


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    # two Parquet parts' worth, so a kill after the first part is about half way
    return _images(tmp_path_factory.mktemp("many") / "images", 2 * PART_ROWS - 2)


def test_resume_after_sigkill_gives_the_uninterrupted_file(digits, many, tmp_path):
    run = str(digits.run_dir)
    whole = tmp_path / "whole.parquet"
    proc = run_cli("predict", run, str(many), "--out", str(whole), "--num-workers", "1")
    assert proc.returncode == 1, proc.stderr  # the two bad files: rows with `error`, exit 1
    assert "00003.5.png: empty file" in proc.stderr

    out = tmp_path / "killed.parquet"
    parts = out.with_name(out.name + ".parts")
    cmd = [sys.executable, "-m", "recog", "predict", run, str(many), "--out", str(out),
           "--num-workers", "1"]  # fmt: skip
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(parts.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert not out.exists(), "killed before the end: only its parts are there"
    done = sum(pq.read_metadata(p).num_rows for p in parts.glob("part-*.parquet"))
    assert 0 < done < 2 * PART_ROWS

    again = run_cli("predict", run, str(many), "--out", str(out), "--resume")
    assert again.returncode == 1, again.stderr
    assert f"{done} already there" in again.stderr
    assert not parts.exists()
    assert _table(out).equals(_table(whole))
    assert pq.ParquetFile(out).num_row_groups == 2  # written in row groups, one per part
    errors = {r["path"]: r["error"] for r in _table(out).to_pylist() if r["error"]}
    assert sorted(Path(p).name for p in errors) == ["00003.5.png", "00100.5.jpg"]


def test_existing_output_is_refused_and_kept(digits, tmp_path, capsys):
    from recog.cli import main

    images = _images(tmp_path / "images", 40, bad=False)
    out = tmp_path / "out.parquet"
    predict = ["predict", str(digits.run_dir), str(images)]
    assert main([*predict, "--out", str(out), "--num-workers", "0"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*predict, "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"recog: error: {out}: already there (from an earlier job); --resume continues it, "
        "or choose another --out"
    ]
    assert main([*predict, "--out", str(out), "--resume", "--top-k", "2"]) == 2
    assert "top_k '5', this job has '2'" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main([*predict, "--out", str(out), "--resume"]) == 0  # all there: nothing to do
    assert "0 images" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*predict, "--resume"]) == 2
    assert "--resume needs --out FILE" in capsys.readouterr().err
    assert main([*predict, "--out", str(tmp_path / "x.csv")]) == 2
    assert "--out must end in .parquet or .jsonl" in capsys.readouterr().err


def test_jsonl_resume_cuts_a_torn_batch_and_matches(digits, tmp_path):
    from recog import api
    from recog.batch import job_settings, list_inputs, open_sink, predict_stream

    rec = api.load(digits.run_dir, device="cpu")
    names = list_inputs([str(_images(tmp_path / "images", 100))])
    settings = job_settings(rec, top_k=3, batch_size=16, reject=True)

    def job(out: Path, resume: bool = False):
        sink = open_sink(out, settings, resume=resume, batch_size=16)
        return predict_stream(rec, names, sink, batch_size=16, num_workers=0, top_k=3)

    whole, torn = tmp_path / "whole.jsonl", tmp_path / "torn.jsonl"
    assert job(whole).errors == 2
    data = whole.read_bytes()
    torn.write_bytes(data[: len(data) // 2])  # a kill mid-line, mid-batch
    summary = job(torn, resume=True)
    assert summary.skipped % 16 == 0 and 0 < summary.skipped < len(names)

    def rows(path: Path) -> list[dict]:
        return [{k: v for k, v in json.loads(x).items() if k != "time"} for x in path.open()]

    assert rows(torn) == rows(whole)
    assert [r["path"] for r in rows(whole)] == names
    assert rows(whole)[0]["labels"] and len(rows(whole)[0]["scores"]) == 3


def test_inputs_manifests_globs_and_fsspec_urls(digits, tmp_path):
    import fsspec

    from recog.batch import list_inputs, read_input
    from recog.errors import RecogError

    folder = _images(tmp_path / "images", 6, bad=False)
    files = sorted(str(p) for p in folder.iterdir())
    (tmp_path / "list.csv").write_text("path,note\n" + "".join(f"images/{Path(f).name},x\n" for f in files[:3]))  # fmt: skip
    pq.write_table(pa.table({"path": files[3:]}), tmp_path / "list.parquet")
    assert list_inputs([str(tmp_path / "list.csv"), str(tmp_path / "list.parquet")]) == [
        str(tmp_path / "images" / Path(f).name) for f in files
    ]
    assert list_inputs([str(folder / "*.png")]) == [f for f in files if f.endswith(".png")]
    assert list_inputs([f"file://{folder}"]) == [f"file://{f}" for f in files]

    memory = fsspec.filesystem("memory")
    for f in files:
        memory.pipe(f"/batch-test/{Path(f).name}", Path(f).read_bytes())
    urls = list_inputs(["memory://batch-test"])
    assert len(urls) == 6 and urls[0].startswith("memory://")
    assert (read_input(urls[0]) == read_input(files[0])).all()

    memory.pipe("/batch-test/bad.jpg", b"\xff\xd8 not a jpeg")
    with pytest.raises(RecogError, match=r"^memory:///batch-test/bad.jpg: "):
        read_input("memory:///batch-test/bad.jpg")
    (tmp_path / "nopath.csv").write_text("file\na.jpg\n")
    with pytest.raises(RecogError, match="needs a `path` column"):
        list_inputs([str(tmp_path / "nopath.csv")])
    with pytest.raises(RecogError, match="^nosuch://x: cannot open this URL"):
        list_inputs(["nosuch://x"])
    with pytest.raises(RecogError, match="^memory://nothing-here: no such file or directory"):
        list_inputs(["memory://nothing-here"])
    memory.pipe("/batch-text/readme.txt", b"not an image")
    with pytest.raises(RecogError, match="^memory://batch-text: no image files found"):
        list_inputs(["memory://batch-text"])

    # the memory file system lives in this process: stream from it here
    from recog import api
    from recog.batch import job_settings, open_sink, predict_stream

    rec = api.load(digits.run_dir, device="cpu")
    out = tmp_path / "urls.parquet"
    sink = open_sink(out, job_settings(rec, top_k=5, batch_size=4, reject=True),
                     resume=False, batch_size=4)  # fmt: skip
    predict_stream(rec, urls, sink, batch_size=4, num_workers=0)
    local = rec.predict(files)
    got = pq.read_table(out).to_pylist()
    assert [r["path"] for r in got] == urls
    for row, pred in zip(got, local, strict=True):
        assert row["labels"][0] == digits.class_names[int(pred.labels)]
        assert row["scores"][0] == pytest.approx(float(pred.scores.max()), abs=1e-6)


def test_resume_after_a_kill_between_join_and_clean_up_keeps_each_row_once(digits, tmp_path):
    from recog import api
    from recog.batch import job_settings, list_inputs, open_sink, predict_stream

    rec = api.load(digits.run_dir, device="cpu")
    names = list_inputs([str(_images(tmp_path / "images", 40, bad=False))])
    settings = job_settings(rec, top_k=5, batch_size=8, reject=True)
    out = tmp_path / "out.parquet"
    predict_stream(rec, names, open_sink(out, settings, resume=False, batch_size=8),
                   batch_size=8, num_workers=0)  # fmt: skip
    whole = _table(out)
    # the parts a close joined into `out` and a kill kept it from removing
    parts = out.with_name(out.name + ".parts")
    parts.mkdir()
    pq.write_table(pq.read_table(out).slice(0, 16), parts / "part-000000.parquet")
    pq.write_table(pq.read_table(out).slice(16), parts / "part-000001.parquet")
    summary = predict_stream(rec, names, open_sink(out, settings, resume=True, batch_size=8),
                             batch_size=8, num_workers=0)  # fmt: skip
    assert summary.skipped == 40 and summary.images == 0
    assert _table(out).equals(whole) and not parts.exists()
