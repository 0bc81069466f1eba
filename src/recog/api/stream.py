"""Predictions on a live stream (`recog predict RUN rtsp://... --stream`): the newest frame, always.

A live source (an RTSP camera, an HTTP MJPEG or MP4 stream, or a file
played as one) does not wait for the model.  PyAV decodes it in a reader
thread that keeps only the newest frame (`_NewestFrame`): a frame decoded
while the model is still busy replaces the one waiting and is counted as
dropped, so each answer is about the picture as it is now, never one from a
growing queue (the camera socket's rule, `recog.serve.camera`).  A file
is played at its own speed (each frame released at its timestamp), as a
camera would deliver it; a network source paces itself.

Each predicted frame becomes a row (`source`, `frame`, `time_s`, the task's
record), handed to `on_row` as soon as it is known (the CLI writes JSONL
line by line, so a stream stopped with Ctrl-C keeps every row so far).
With `save_dir`, the predicted frames, drawn, go to `SAVE_DIR/<name>.mp4`
at their own times, written to a temporary file and renamed when the stream
ends or is stopped.  The same pixel cap as every user image applies to each
frame; a source that cannot be opened, or sends nothing for `READ_TIMEOUT_S`
seconds, is one `RecogError`.  PyAV is optional (`recog[video]`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recog.api.video import Draw, check_pixels, require_av
from recog.errors import RecogError
from recog.io import atomic_write

#: seconds a network source may stay silent (opening it, or between frames)
READ_TIMEOUT_S = 15.0
#: URL schemes read as network streams (anything else must be a local file)
STREAM_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "tcp://",
    "srt://",
)


@dataclass
class StreamSummary:
    """What a stream gave: frames decoded, predicted and dropped, and the time it took."""

    source: str
    decoded: int = 0
    predicted: int = 0
    dropped: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.predicted / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = lat[len(lat) // 2] if lat else 0.0
        return (
            f"{self.source}: {self.decoded} frames decoded, {self.predicted} predicted, "
            f"{self.dropped} dropped while the model was busy, in {self.seconds:.1f} s "
            f"({self.fps:.1f} frames/s, model p50 {p50:.0f} ms)"
        )


def is_stream_url(source: str) -> bool:
    return source.lower().startswith(STREAM_SCHEMES)


def _open(source: str) -> Any:
    import av

    if not is_stream_url(source) and not Path(source).is_file():
        raise RecogError(f"{source}: no such file (a stream is a file or an rtsp/http/udp URL)")
    # FFmpeg's own time-outs, in microseconds: opening and each read of a network source
    micro = str(int(READ_TIMEOUT_S * 1e6))
    options = {"rw_timeout": micro, "timeout": micro} if is_stream_url(source) else {}
    if source.lower().startswith(("rtsp://", "rtsps://")):
        options = {"rtsp_transport": "tcp", "timeout": micro}
    try:
        container = av.open(source, mode="r", options=options, timeout=READ_TIMEOUT_S)
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecogError(f"{source}: cannot open the stream ({_problem(exc)})") from None
    if not container.streams.video:
        container.close()
        raise RecogError(f"{source}: holds no video stream")
    return container


def _problem(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _NewestFrame(threading.Thread):
    """Decodes `container` in its own thread; `take` returns the newest frame not yet taken."""

    def __init__(self, source: str, container: Any, pace: bool, stop: threading.Event) -> None:
        super().__init__(name="recog-stream-reader", daemon=True)
        self.source, self.container, self.pace, self.stop = source, container, pace, stop
        self.cond = threading.Condition()
        self.frame: tuple[int, float, torch.Tensor] | None = None
        self.decoded = self.dropped = 0
        self.done = False
        self.error: RecogError | None = None

    def run(self) -> None:
        import av

        stream = self.container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        start = first = None
        try:
            for index, frame in enumerate(self.container.decode(stream)):
                if self.stop.is_set():
                    break
                check_pixels(Path(self.source), frame.width, frame.height)
                seconds = float(frame.time) if frame.time is not None else index / rate
                if self.pace:  # a file plays at its own speed, as a camera would send it
                    start, first = (
                        start or time.perf_counter(),
                        first if first is not None else seconds,
                    )
                    wait = (seconds - first) - (time.perf_counter() - start)
                    if wait > 0 and self.stop.wait(wait):
                        break
                rgb = torch.from_numpy(np.ascontiguousarray(frame.to_ndarray(format="rgb24")))
                with self.cond:
                    self.dropped += int(self.frame is not None)
                    self.decoded += 1
                    self.frame = (index, seconds, rgb.permute(2, 0, 1))
                    self.cond.notify()
        except RecogError as exc:
            self.error = exc
        except (av.FFmpegError, OSError) as exc:
            self.error = RecogError(f"{self.source}: the stream broke ({_problem(exc)})")
        finally:
            with self.cond:
                self.done = True
                self.cond.notify()

    def take(self) -> tuple[int, float, torch.Tensor] | None:
        """The newest frame (waiting for one), or None when the stream has ended."""
        with self.cond:
            while self.frame is None and not self.done:
                if not self.cond.wait(READ_TIMEOUT_S) and self.frame is None and not self.done:
                    raise RecogError(
                        f"{self.source}: no frame for {READ_TIMEOUT_S:.0f} s; the stream stalled"
                    )
            frame, self.frame = self.frame, None
            if frame is None and self.error is not None:
                raise self.error
            return frame


def predict_stream(
    rec: Any,
    source: str,
    *,
    on_row: Callable[[dict[str, Any]], None],
    reject: bool = True,
    top_k: int = 5,
    save_dir: Path | None = None,
    draw: Draw | None = None,
    max_frames: int | None = None,
    stop: threading.Event | None = None,
) -> StreamSummary:
    """Predict the newest frame of `source` again and again until it ends, `max_frames` are
    predicted or `stop` is set; each row goes to `on_row` at once."""
    require_av(source)
    container = _open(source)
    stop = stop or threading.Event()
    summary = StreamSummary(source)
    try:
        stream = container.streams.video[0]
        check_pixels(Path(source), stream.codec_context.width, stream.codec_context.height)
        if save_dir is None:
            _run(rec, source, container, summary, on_row, reject, top_k, None, max_frames, stop)
            return summary
        out = Path(save_dir) / f"{_stem(source)}.mp4"
        if out.exists() or out.is_symlink():  # a clip of the user's, or a stream's before
            raise RecogError(f"{out}: already exists; --stream never writes over a file")

        def write(tmp: str) -> None:
            encoder = _TimedEncoder(tmp, stream.codec_context.width, stream.codec_context.height)
            try:
                _run(rec, source, container, summary, on_row, reject, top_k,
                     lambda image, pred, t: encoder.add((draw or rec.task.draw)(image, pred), t),
                     max_frames, stop)  # fmt: skip
            finally:
                encoder.close()

        atomic_write(out, write)
        return summary
    finally:
        stop.set()
        container.close()


def _run(
    rec: Any, source: str, container: Any, summary: StreamSummary,
    on_row: Callable[[dict[str, Any]], None], reject: bool, top_k: int,
    on_frame: Callable[[torch.Tensor, Any, float], None] | None,
    max_frames: int | None, stop: threading.Event,
) -> None:  # fmt: skip
    reader = _NewestFrame(source, container, pace=not is_stream_url(source), stop=stop)
    start = time.perf_counter()
    reader.start()
    try:
        while (max_frames is None or summary.predicted < max_frames) and not stop.is_set():
            item = reader.take()
            if item is None:
                break
            index, seconds, image = item
            began = time.perf_counter()
            (pred,) = rec.predict([image], reject=reject)
            summary.latencies_ms.append((time.perf_counter() - began) * 1000.0)
            record = rec.task.to_record(pred, top_k=top_k)
            on_row({"source": source, "frame": index, "time_s": round(seconds, 6), **record})
            summary.predicted += 1
            if on_frame is not None:
                on_frame(image, pred, seconds)
    finally:
        stop.set()
        reader.join(timeout=READ_TIMEOUT_S)
        summary.seconds = time.perf_counter() - start
        summary.decoded, summary.dropped = reader.decoded, reader.dropped


def _stem(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    stem = Path(name).stem or "stream"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:100]


class _TimedEncoder:
    """The drawn frames at their own times (milliseconds), H.264 in MP4: a stream's predicted
    frames are irregular (the dropped ones are missing), so each keeps its timestamp."""

    def __init__(self, tmp: str, width: int, height: int) -> None:
        import av

        from recog.api.video import pick_codec

        self.container = av.open(tmp, mode="w", format="mp4")
        self.stream = self.container.add_stream(pick_codec(), rate=1000)
        self.stream.width, self.stream.height = width - width % 2, height - height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.codec_context.time_base = Fraction(1, 1000)
        self.first: float | None = None
        self.last_pts = -1

    def add(self, image: torch.Tensor, seconds: float) -> None:
        import av

        self.first = seconds if self.first is None else self.first
        pts = max(self.last_pts + 1, round((seconds - self.first) * 1000))
        self.last_pts = pts
        h, w = self.stream.height, self.stream.width
        frame = av.VideoFrame.from_ndarray(
            image[:, :h, :w].permute(1, 2, 0).contiguous().numpy(), format="rgb24"
        )
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
