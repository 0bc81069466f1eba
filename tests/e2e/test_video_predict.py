"""`recog predict RUN clip.mp4 --vid-stride N`: per-frame rows and a drawn clip that decodes with
the strided frame count; a damaged or non-video file is one line and exit 2."""

from __future__ import annotations

import csv
import importlib.util
import json
from fractions import Fraction

import av
import numpy as np
import pytest

from recog.cli import main


def make_clip(path, frames: int = 10, size: int = 64, rate: int = 10) -> None:
    """`frames` solid-colour frames, a white bar growing left to right, H.264 at `rate` fps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size, size, 3), (20 * i, 40, 200 - 15 * i), np.uint8)
            image[:, : 6 * (i + 1)] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    make_clip(path)
    return path


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    return lines[0]


def test_strided_rows_and_the_drawn_clip(digits, clip, tmp_path, capsys):
    save = tmp_path / "drawn"
    code = main(["predict", str(digits.run_dir), str(clip), "--vid-stride", "3",
                 "--save-dir", str(save), "--format", "json"])  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["frame"] for r in rows] == [0, 3, 6, 9]
    assert [r["time_s"] for r in rows] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    for row in rows:
        assert row["path"] == str(clip)
        assert row["label"] in digits.class_names and 0 <= row["score"] <= 1
        assert len(row["top_k"]) == 5
    with av.open(str(save / "clip.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.average_rate == Fraction(10, 3)  # the clip's rate over the stride
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    # the task's drawing is on the frame: classify's black banner over the blue (200) top,
    # the rest of the frame as it was
    assert frames[0][:4, 20:, 2].mean() < 100 < 150 < frames[0][30:, 20:, 2].mean()
    assert not list(save.glob(".*.tmp"))  # written whole, then renamed


def test_every_frame_to_a_csv_file(digits, clip, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    assert main(["predict", str(digits.run_dir), str(clip), "--out", str(out)]) == 0
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame"]) for r in rows] == list(range(10))
    assert {"path", "frame", "time_s", "label", "score", "top_k"} <= set(rows[0])
    assert "rows.csv: 10 frames" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not a video at all\n" * 50, "not a readable video"),
        (None, "not a readable video"),  # an MP4 cut in half: its index (moov) is gone
    ],
)
def test_a_damaged_file_is_one_line(digits, clip, tmp_path, capsys, content, problem):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(
        content if content is not None else clip.read_bytes()[: clip.stat().st_size // 2]
    )
    assert main(["predict", str(digits.run_dir), str(bad)]) == 2
    line = one_error_line(capsys)
    assert str(bad) in line and problem in line


def test_frames_meet_the_image_pixel_limit(digits, clip, monkeypatch, capsys):
    import recog.data.images as images

    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    assert main(["predict", str(digits.run_dir), str(clip)]) == 2
    line = one_error_line(capsys)
    assert f"{clip}: a frame is 64x64 = 4,096 pixels; the limit is 1,000" in line


def test_stride_images_mixes_and_missing_pyav_are_refused(
    digits, clip, tmp_path, monkeypatch, capsys
):
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    assert main(["predict", str(digits.run_dir), str(image), "--vid-stride", "2"]) == 2
    assert "--vid-stride: only for videos" in one_error_line(capsys)
    assert main(["predict", str(digits.run_dir), str(image), str(clip)]) == 2
    assert "videos and images in one command" in one_error_line(capsys)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a)
    )
    assert main(["predict", str(digits.run_dir), str(clip)]) == 2
    assert one_error_line(capsys) == (
        f"recog: error: {clip}: reading videos needs PyAV (pip install 'recog[video]')"
    )
