"""`recog predict RUN SOURCE --stream`: a file played at its own speed and the same file served
over HTTP as a live source; the newest frame is predicted, the others dropped and counted; rows
come as JSON lines; the drawn clip keeps the predicted frames' own times."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time

import av
import pytest
from test_video_predict import make_clip

from recog.api.stream import predict_stream
from recog.cli import main


@pytest.fixture
def long_clip(tmp_path):
    path = tmp_path / "live.mp4"
    make_clip(path, frames=30, rate=30)  # one second at 30 frames/s
    return path


@pytest.fixture
def http_source(long_clip):
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(long_clip.parent)
    )
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{long_clip.name}"
    server.shutdown()


class _SlowModel:
    """The run's recognizer, 100 ms a frame: three frames of a 30 frames/s stream per answer."""

    def __init__(self, rec):
        self.rec, self.task, self.calls = rec, rec.task, 0

    def predict(self, images, **kwargs):
        time.sleep(0.1)
        self.calls += 1
        return self.rec.predict(images, **kwargs)


def test_a_busy_model_gets_the_newest_frame_and_the_rest_are_counted(digits, long_clip):
    rows = []
    start = time.perf_counter()
    summary = predict_stream(_SlowModel(digits), str(long_clip), on_row=rows.append)
    elapsed = time.perf_counter() - start
    assert 0.9 < elapsed < 5  # played at its own speed (one second), not decoded at once
    assert summary.decoded == 30
    assert 5 <= summary.predicted <= 15  # about 10 answers in one second at 100 ms each
    assert summary.predicted + summary.dropped == summary.decoded
    frames = [r["frame"] for r in rows]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    # never behind: each answered frame is at most a model time (three frames) plus one old
    gaps = [b - a for a, b in zip(frames, frames[1:], strict=False)]
    assert max(gaps) <= 6
    assert "dropped while the model was busy" in summary.line()


def test_stream_over_http_writes_json_lines_and_a_timed_clip(digits, http_source, tmp_path, capsys):
    out, save = tmp_path / "rows.jsonl", tmp_path / "drawn"
    code = main(["predict", str(digits.run_dir), http_source, "--stream", "--out", str(out),
                 "--save-dir", str(save)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["source"] == http_source for r in rows)
    assert all(r["label"] in digits.class_names for r in rows)
    assert "frames decoded" in capsys.readouterr().err
    with av.open(str(save / "live.mp4")) as container:
        times = [f.time for f in container.decode(video=0)]
    assert len(times) == len(rows)
    # the drawn frames keep their times in the source (first at 0)
    assert times[-1] == pytest.approx(rows[-1]["time_s"] - rows[0]["time_s"], abs=0.05)


def test_max_frames_and_stdout(digits, long_clip, capsys):
    code = main(["predict", str(digits.run_dir), str(long_clip), "--stream", "--max-frames", "3"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["frame"] >= 0


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--format", "csv"], "--stream prints JSON lines"),
        (["--vid-stride", "2"], "--vid-stride: not for --stream"),
        (["--out", "rows.csv"], "to a .jsonl file"),
    ],
)
def test_stream_refusals_are_one_line(digits, long_clip, capsys, extra, problem):
    code = main(["predict", str(digits.run_dir), str(long_clip), "--stream", *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0]


def test_an_unreachable_stream_and_an_existing_out_are_one_line(
    digits, long_clip, tmp_path, capsys
):
    code = main(["predict", str(digits.run_dir), "http://127.0.0.1:9/none.mp4", "--stream"])
    assert code == 2
    assert "cannot open the stream" in capsys.readouterr().err
    out = tmp_path / "kept.jsonl"
    out.write_text("mine\n")
    code = main(["predict", str(digits.run_dir), str(long_clip), "--stream", "--out", str(out)])
    assert code == 2 and out.read_text() == "mine\n"
    (tmp_path / "drawn").mkdir()
    (tmp_path / "drawn" / "live.mp4").write_bytes(b"the user's own clip")
    code = main(["predict", str(digits.run_dir), str(long_clip), "--stream",
                 "--save-dir", str(tmp_path / "drawn")])  # fmt: skip
    assert code == 2 and (tmp_path / "drawn" / "live.mp4").read_bytes() == b"the user's own clip"
    assert "never writes over a file" in capsys.readouterr().err
    code = main(["predict", str(digits.run_dir), str(long_clip), "--max-frames", "2"])
    assert code == 2 and "--max-frames: only with --stream" in capsys.readouterr().err
