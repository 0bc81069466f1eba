"""The camera's back-pressure and its counts: at most one frame waits, a newer one replaces it.

A live picture is only worth answering while it is still the picture: a
queue of frames behind a busy model answers the world as it was seconds ago,
and grows without bound when the client sends faster than the model reads.
So each camera connection holds one `LatestFrame`: the receiving side
`put`s every frame it reads (a frame still waiting is replaced, and counted
as dropped), the answering side `get`s the newest one when the model is
free.  Memory per connection is one frame whatever the client does.

`CameraMetrics` is what `/metrics` shows of the camera: sessions open,
frames answered / dropped / refused per model, and the server-side latency
of each answered frame (decode + queue + model).  Written here rather than
borrowed: no library keeps a one-slot, replace-on-put mailbox for asyncio
(`asyncio.Queue(maxsize=1)` blocks or refuses the newest frame instead).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: server-side seconds per camera frame: most models here answer in 10-300 ms on a CPU
_FRAME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0)


@dataclass
class LatestFrame:
    """A one-frame mailbox: `put` never waits and keeps only the newest frame."""

    dropped: int = 0
    received: int = 0
    _frame: tuple[int, bytes] | None = None
    _closed: bool = False
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, frame: bytes) -> bool:
        """Leave `frame` for the answering side; True when it replaced one still waiting."""
        replaced = self._frame is not None
        self.dropped += int(replaced)
        self.received += 1
        self._frame = (self.received, frame)
        self._ready.set()
        return replaced

    def close(self) -> None:
        """No more frames: a waiting `get` returns None (the frame left waiting is dropped)."""
        self.dropped += int(self._frame is not None)
        self._frame = None
        self._closed = True
        self._ready.set()

    async def get(self) -> tuple[int, bytes] | None:
        """(its number among the frames received, from 1; the newest frame), waiting for one;
        None once closed."""
        while self._frame is None and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        return frame


class CameraMetrics:
    """The camera's Prometheus series, registered in the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.sessions = Gauge("recog_camera_sessions", "camera connections open", registry=registry)
        self.frames = Counter(
            "recog_camera_frames",
            "camera frames by outcome (answered; dropped: replaced by a newer frame while the "
            "model was busy; refused: not an image recog reads)",
            ["model", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "recog_camera_frame_seconds",
            "server-side seconds per answered camera frame (decode, queue, model)",
            ["model"],
            buckets=_FRAME_BUCKETS,
            registry=registry,
        )
