"""Shared by the server tests (tests/serve) and the browser test: tiny trained runs, a live server.

The runs are trained once per test session (a 1-epoch `cnn` on digits, a
1-epoch `yolo_n` on 64 generated scenes at 64 px): the tests exercise the
serving path, not the models' accuracy.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_RUNS: dict[str, dict[str, Path]] = {}


def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"classify": run_dir, "detect": run_dir}, trained once per session."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _RUNS:
        import recog

        root = tmp_path_factory.mktemp("serve-runs")
        cls = recog.train(
            "digits",
            "cnn",
            epochs=1,
            model_args={"width": 16},
            batch_size=64,
            out=str(root / "digits-cnn"),
        )
        det = recog.train(
            "shapes:64:16",
            "yolo_n",
            epochs=1,
            img_size=64,
            batch_size=16,
            out=str(root / "shapes-yolo"),
        )
        _RUNS[key] = {"classify": cls.run_dir, "detect": det.run_dir}
    return _RUNS[key]


def segment_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-epoch U-Net on generated scenes at 64 px (semantic segmentation), trained once."""
    key = str(tmp_path_factory.getbasetemp()) + ":segment"
    if key not in _RUNS:
        import recog
        from recog.tasks import TASKS
        from recog.types import TaskName

        if TaskName.SEGMENT not in TASKS:
            pytest.skip("segmentation is not a recog task yet")
        root = tmp_path_factory.mktemp("serve-seg-run")
        rec = recog.train(
            "shapes:32:8",
            "unet",
            task="segment",
            epochs=1,
            img_size=64,
            batch_size=16,
            out=str(root / "shapes-unet"),
        )
        _RUNS[key] = {"segment": rec.run_dir}
    return _RUNS[key]["segment"]


CHROMIUM = Path("/usr/bin/chromium")


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless chromium driven by Playwright (callers skip when either is missing)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def png_bytes(width: int = 48, height: int = 40, colour=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def digit_png(index: int = 0, size: int = 64) -> bytes:
    """A real handwritten digit from the built-in set, upscaled, as PNG."""
    from PIL import Image

    from recog.data.formats.digits import digits_images

    images, _ = digits_images()
    arr = images[index].permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).resize((size, size), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    proc: subprocess.Popen
    url: str
    log: Path


@contextlib.contextmanager
def live_server(
    runs: list[Path], tmp: Path, *args: str, timeout: float = 120.0
) -> Iterator[LiveServer]:
    """`recog serve RUNS` on a free port of 127.0.0.1, ready when /healthz answers."""
    import httpx

    port = free_port()
    log = tmp / f"server-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "recog",
        "serve",
        *map(str, runs),
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp / f'history-{port}.db'}",
        "--log-level",
        "warning",
        "--no-access-log",
        *args,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"recog serve exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"recog serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield LiveServer(proc, url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ hostile uploads
def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90
    )
    return buf.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side x side pixels (all black): ~50 KB that would decode to gigabytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )


def animated_gif(frames: int = 5000, side: int = 8) -> bytes:
    from PIL import Image

    # alternate two different pictures: Pillow merges identical consecutive frames
    a = Image.new("L", (side, side), 0)
    b = Image.new("L", (side, side), 255)
    images = [b if i % 2 else a for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=20, disposal=1
    )
    return buf.getvalue()


def hostile_payloads() -> list[tuple[str, str, object]]:
    """(name, how, payload): how is "file" (multipart `file`), "json" (a JSON body) or "field"
    (a multipart form with a huge text field)."""
    import base64

    jpeg, png = jpeg_bytes(), png_bytes(64, 64)
    return [
        ("truncated jpeg", "file", jpeg[: len(jpeg) // 2]),
        ("jpeg header only", "file", jpeg[:20]),
        ("truncated png", "file", png[: len(png) - 30]),
        ("zero bytes", "file", b""),
        ("text named .jpg", "file", b"this is not an image, just text\n" * 20),
        ("html named .jpg", "file", b"<html><script>alert(1)</script></html>"),
        ("png bomb 20000x20000", "file", png_bomb()),
        ("gif 5000 frames", "file", animated_gif()),
        ("huge file 11 MB", "file", b"\xff\xd8\xff" + b"\x00" * (11 * 1024 * 1024)),
        ("huge multipart text field", "field", b"x" * (2 * 1024 * 1024)),
        ("invalid base64", "json", {"image": "not base64 at all!!"}),
        ("base64 of text", "json", {"image": base64.b64encode(b"hello").decode()}),
        ("json without image", "json", {"picture": "abc"}),
        ("json image not a string", "json", {"image": 12}),
    ]
