"""Predictions on a video's frames (`recog predict RUN clip.mp4`): one row per frame, and the clip drawn.

PyAV (FFmpeg's libraries) decodes the clip one frame at a time; every
`stride`-th frame goes to the Recognizer in batches, as images do, and its
row is the task's `to_record` with `frame` (index in the clip) and `time_s`
(its presentation time).  With `save_dir` the predicted frames, drawn by the
caller's `draw` (the task's), are encoded as `SAVE_DIR/<stem>.mp4` at the
clip's frame rate divided by the stride, written to a temporary file and
renamed when complete.

Limits: each frame meets the pixel cap every user image meets
(`recog.data.images.MAX_PIXELS`), read from the stream's header before any
frame is decoded and checked again on each decoded frame.  The byte cap of an
image file does not apply: a clip is never read whole, only a frame at a time.
A file FFmpeg cannot open, without a video stream, or damaged mid-way is a
`RecogError` naming the file and the problem.

PyAV is optional (`pip install 'recog[video]'`); it is imported only here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recog.errors import RecogError
from recog.io import atomic_write
from recog.types import Prediction

#: suffixes `recog predict` reads as videos
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: encoders for the drawn clip, the first PyAV has (its wheels carry libx264)
_CODECS = ("libx264", "h264", "mpeg4")

Draw = Callable[[torch.Tensor, Prediction], torch.Tensor]


def is_video(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


def require_av(name: str | Path) -> None:
    if importlib.util.find_spec("av") is None:
        raise RecogError(f"{name}: reading videos needs PyAV (pip install 'recog[video]')")


def _problem(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _open(path: Path) -> Any:
    import av

    if not path.is_file():
        raise RecogError(f"{path}: no such file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise RecogError(f"{path}: not a readable video ({_problem(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise RecogError(f"{path}: holds no video stream")
    return container


def check_pixels(path: Path, width: int, height: int) -> None:
    from recog.data.images import MAX_PIXELS

    if width < 1 or height < 1:
        raise RecogError(f"{path}: the video's frames have no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise RecogError(
            f"{path}: a frame is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {MAX_PIXELS:,}"
        )


def _frames(path: Path, container: Any, stride: int) -> Iterator[tuple[int, float, torch.Tensor]]:
    """(index, seconds, (3, H, W) uint8) of every `stride`-th frame."""
    import av

    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 0) or None
    index = -1
    try:
        for frame in container.decode(stream):
            index += 1
            if index % stride:
                continue
            check_pixels(path, frame.width, frame.height)
            seconds = float(frame.time) if frame.time is not None else index / (rate or 1.0)
            rgb = frame.to_ndarray(format="rgb24")
            yield index, seconds, torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)
    except av.FFmpegError as exc:
        raise RecogError(f"{path}: damaged video after frame {index} ({_problem(exc)})") from exc
    if index < 0:
        raise RecogError(f"{path}: the video has no frames")


def pick_codec() -> str:
    """The first encoder of `_CODECS` this PyAV has."""
    import av

    return next(c for c in _CODECS if c in av.codecs_available)


class _Encoder:
    """The drawn clip: frames in at `rate`, H.264 (or MPEG-4) in an MP4 container."""

    def __init__(self, tmp: str, rate: Fraction, width: int, height: int) -> None:
        import av

        self.container = av.open(tmp, mode="w", format="mp4")
        self.stream = self.container.add_stream(pick_codec(), rate=rate)
        # 4:2:0 chroma needs even sides; an odd one loses its last pixel row or column
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"

    def add(self, image: torch.Tensor) -> None:
        import av

        h, w = self.stream.height, self.stream.width
        rgb = image[:, :h, :w].permute(1, 2, 0).contiguous().numpy()
        for packet in self.stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def predict_video(
    rec: Any,
    path: str | Path,
    *,
    stride: int = 1,
    batch_size: int = 32,
    reject: bool = True,
    top_k: int = 5,
    save_dir: Path | None = None,
    draw: Draw | None = None,
) -> list[dict[str, Any]]:
    """One record per predicted frame of `path` (`path`, `frame`, `time_s`, the task's fields);
    with `save_dir`, also `SAVE_DIR/<stem>.mp4` with each predicted frame drawn by `draw`."""
    path = Path(path)
    if stride < 1:
        raise RecogError(f"--vid-stride {stride}: must be 1 or more")
    require_av(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        check_pixels(path, stream.codec_context.width, stream.codec_context.height)
        if save_dir is None:
            return _predict(rec, path, container, stride, batch_size, reject, top_k, None)
        out = Path(save_dir) / f"{path.stem}.mp4"
        if out.resolve() == path.resolve():
            raise RecogError(f"{out}: --save-dir would overwrite the input video")
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25) / stride
        rows: list[dict[str, Any]] = []

        def write(tmp: str) -> None:
            encoder = _Encoder(
                tmp, rate.limit_denominator(1001 * 1000), stream.width, stream.height
            )
            try:
                rows.extend(
                    _predict(rec, path, container, stride, batch_size, reject, top_k,
                             lambda image, pred: encoder.add((draw or rec.task.draw)(image, pred)))
                )  # fmt: skip
            finally:
                encoder.close()

        atomic_write(out, write)
        return rows
    finally:
        container.close()


def _predict(
    rec: Any,
    path: Path,
    container: Any,
    stride: int,
    batch_size: int,
    reject: bool,
    top_k: int,
    on_frame: Callable[[torch.Tensor, Prediction], None] | None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    batch: list[tuple[int, float, torch.Tensor]] = []

    def flush() -> None:
        preds = rec.predict([image for _, _, image in batch], batch_size=batch_size, reject=reject)
        for (index, seconds, image), pred in zip(batch, preds, strict=True):
            record = rec.task.to_record(pred, top_k=top_k)
            rows.append({"path": str(path), "frame": index, "time_s": round(seconds, 6), **record})
            if on_frame is not None:
                on_frame(image, pred)
        batch.clear()

    for item in _frames(path, container, stride):
        batch.append(item)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return rows
