"""Real time: the camera socket (`WS /v1/camera`) under a client that sends as fast as it can.

Two runs (trained here for a few steps: the weights do not change the cost of
a forward pass): `yolo_n` at 320 px on the built-in shapes scenes, and the
default classifier (the recipe's choice for photos: EfficientNet-Lite0 at its
224 px, from its ImageNet weights) on digits scaled up as photos would be.
Each is served by `recog serve` on 127.0.0.1; one client sends 320x240 JPEG
frames of a moving scene over one WebSocket for `--seconds`, never waiting
for an answer (a sender and a receiver thread), so the model is always busy
and the server's one-frame rule must drop what it cannot answer.

Per model: answered frames/s, p50/p95 latency from a frame's send to its
answer (the answer names the frame it answers, `seq`), frames dropped, the
server's resident memory after warm-up and at the end (flat: one frame per
connection whatever the client sends).  The limit: a plain loop in this
process that decodes the same JPEG frames and runs the same model on each,
one at a time (`Recognizer.predict`); the ratio is the socket's frames/s
over the loop's (1.0: the server adds nothing; the peer here is the plain
loop, since no tool named in the issue serves a camera socket on a CPU).

    .venv/bin/python bench/live.py                 # 60 s per model, appends to bench/README.md
    .venv/bin/python bench/live.py --seconds 10 --quick
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, header  # noqa: E402
from serve_load import start_server, stop_server  # noqa: E402

import recog  # noqa: E402

SEED = 0


def frames(count: int = 60, width: int = 320, height: int = 240) -> list[bytes]:
    """JPEG frames of a red square and a blue disc moving over a noisy grey scene."""
    rng = np.random.default_rng(SEED)
    out = []
    for i in range(count):
        rgb = np.clip(rng.normal(128, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        x = 20 + (i * 5) % (width - 100)
        rgb[60:140, x : x + 80] = (220, 30, 30)
        yy, xx = np.ogrid[:height, :width]
        rgb[(yy - 170) ** 2 + (xx - (width - x - 40)) ** 2 < 35**2] = (30, 60, 220)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def train_runs(work: Path) -> dict[str, Path]:
    """{label: run}: yolo_n at 320 px, and the recipe's default classifier."""
    yolo = recog.train("shapes:32:8", "yolo_n", task="detect", img_size=320, steps=2, batch_size=4,
                       out=str(work / "yolo_n-320"))  # fmt: skip
    classifier = recog.train("digits", "efficientnet_lite0", steps=2, batch_size=8, img_size=224,
                             out=str(work / "lite0-224"))  # fmt: skip
    return {"yolo_n 320 px": yolo.run_dir, "efficientnet_lite0 224 px": classifier.run_dir}


def plain_loop(run: Path, jpegs: list[bytes], seconds: float) -> dict:
    """Decode + forward of the frames, one at a time, in this process: frames/s and latency."""
    from torchvision.io import decode_jpeg

    rec = recog.load(run)
    tensors = [torch_frame(b, decode_jpeg) for b in jpegs[:2]]
    rec.predict(tensors)  # warm-up
    latencies = []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        began = time.perf_counter()
        rec.predict([torch_frame(jpegs[i % len(jpegs)], decode_jpeg)])
        latencies.append((time.perf_counter() - began) * 1000.0)
        i += 1
    elapsed = time.perf_counter() - start
    return {"fps": i / elapsed, "p50": statistics.median(latencies),
            "p95": float(np.percentile(latencies, 95))}  # fmt: skip


def torch_frame(data: bytes, decode_jpeg):
    import torch

    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))


def socket_client(url: str, jpegs: list[bytes], seconds: float) -> dict:
    """Send frames as fast as the socket takes them for `seconds`; receive answers meanwhile."""
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    last: dict = {}
    stop = threading.Event()
    with connect(url.replace("http://", "ws://") + "/v1/camera", max_size=2**24) as ws:

        def receive() -> None:
            while True:
                try:
                    reply = json.loads(ws.recv(timeout=30))
                except Exception:
                    return
                if "seq" in reply and "error" not in reply:
                    latencies.append((time.perf_counter() - sent_at[reply["seq"]]) * 1000.0)
                    last.update(reply)
                if stop.is_set() and reply.get("received") == len(sent_at):
                    return

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            n += 1
            sent_at[n] = time.perf_counter()
            ws.send(jpegs[n % len(jpegs)])
            time.sleep(0.001)  # a real camera cannot send more than ~1000 frames/s either
        elapsed = time.perf_counter() - start
        stop.set()
        receiver.join(timeout=30)
    q = np.percentile(latencies, [50, 95]) if latencies else [float("nan")] * 2
    return {"sent": n, "answered": last.get("answered", 0), "dropped": last.get("dropped", 0),
            "fps": last.get("answered", 0) / elapsed, "p50": float(q[0]), "p95": float(q[1])}  # fmt: skip


def measure(label: str, run: Path, work: Path, jpegs: list[bytes], seconds: float) -> dict:
    proc, url, log = start_server(run, work, max_batch=8, max_wait_ms=5)
    try:
        server = psutil.Process(proc.pid)
        socket_client(url, jpegs, 3)  # warm-up
        rss_start = server.memory_info().rss / 2**20
        result = socket_client(url, jpegs, seconds)
        result["rss_start"], result["rss_end"] = rss_start, server.memory_info().rss / 2**20
    finally:
        stop_server(proc, log)
    result["loop"] = plain_loop(run, jpegs, min(seconds, 20))
    result["label"] = label
    return result


def table(rows: list[dict]) -> str:
    lines = [
        "| model | sent | answered/s | p50 ms | p95 ms | dropped | RSS start MB | RSS end MB | "
        "plain loop frames/s | loop p50 ms | socket / loop |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        loop = r["loop"]
        lines.append(
            f"| {r['label']} | {r['sent']} | {r['fps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | "
            f"{r['dropped']} | {r['rss_start']:.0f} | {r['rss_end']:.0f} | {loop['fps']:.1f} | "
            f"{loop['p50']:.0f} | {r['fps'] / loop['fps']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="print only (no bench/README.md)")
    args = parser.parse_args()
    head = header("live.py: the camera socket against a plain decode + forward loop", seed=SEED)
    print(head, flush=True)
    jpegs = frames()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        runs = train_runs(work)
        rows = [measure(label, run, work, jpegs, args.seconds) for label, run in runs.items()]
    text = table(rows)
    print(text)
    verdict = [
        f"{r['label']}: {r['fps']:.1f} answered frames/s = {r['fps'] / r['loop']['fps']:.2f}x the "
        f"plain loop; {r['dropped']} of {r['sent']} frames dropped; RSS {r['rss_start']:.0f} -> "
        f"{r['rss_end']:.0f} MB"
        for r in rows
    ]
    print("\n".join(verdict))
    if not args.quick:
        setup = f"{args.seconds:.0f} s per model, 320x240 JPEG frames, one client, max-batch 8"
        print(append_results("live.py", head, setup, text, verdict))


if __name__ == "__main__":
    main()
