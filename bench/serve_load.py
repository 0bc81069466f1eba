"""Serving under load: `recog serve` with micro-batching against the same server with `--max-batch 1`.

One classification run (trained here for one epoch: the weights do not
change the cost of a forward pass) is served twice on 127.0.0.1, once with
micro-batching and once with one image per forward pass.  Each server gets
a warm-up, then a bounded load: `--requests` POST /v1/predict (multipart
JPEG uploads, as the web page sends them) from `--concurrency` clients that
each send their next request as soon as the last one is answered, then the
load stops.  Reported per server: requests/s, p50/p95/p99 latency as the
client sees it, errors (must be 0), and the server's resident memory after
the warm-up and after the load (growth must stay under 50 MB).  The ratio
printed last is micro-batching's requests/s over batch 1's (target >= 1.5x).

    .venv/bin/python bench/serve_load.py                       # 2,000 requests x 16 clients, appends to bench/README.md
    .venv/bin/python bench/serve_load.py --quick               # 300 requests, prints only
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, header  # noqa: E402

import recog  # noqa: E402

SEED = 0


def test_image(size: int = 256) -> bytes:
    """A photo-sized JPEG with smooth structure and noise (decoding cost like a real photo)."""
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[0:size, 0:size]
    base = np.stack([x, y, (x + y) // 2], axis=-1).astype(np.float32) * (255.0 / size)
    noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    run: Path,
    work: Path,
    *,
    max_batch: int,
    max_wait_ms: float,
    db: str | None = None,
    extra: tuple[str, ...] = (),
):
    """`recog serve run` on a free port (history: `db`, default a SQLite file in `work`)."""
    port = free_port()
    log = open(work / f"server-{port}.log", "wb")  # noqa: SIM115 (closed by stop_server)
    cmd = [
        sys.executable,
        "-m",
        "recog",
        "serve",
        str(run),
        "--port",
        str(port),
        "--db",
        db or f"sqlite:///{work / f'history-{port}.db'}",
        "--max-batch",
        str(max_batch),
        "--max-wait-ms",
        str(max_wait_ms),
        "--log-level",
        "warning",
        "--no-access-log",
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"recog serve exited; see {log.name}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"recog serve did not start; see {log.name}")


def stop_server(proc: subprocess.Popen, log) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


async def load(url: str, image: bytes, *, requests: int, concurrency: int) -> dict:
    """`requests` predictions from `concurrency` closed-loop clients; latencies in ms."""
    latencies: list[float] = []
    errors: list[str] = []
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                try:
                    r = await client.post(
                        "/v1/predict", files={"file": ("photo.jpg", image, "image/jpeg")}
                    )
                    if r.status_code != 200:
                        errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append((time.perf_counter() - start) * 1000.0)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "latencies": latencies, "errors": errors}


def batch_stats(url: str) -> tuple[float, float]:
    """(forward passes, mean images per pass) from the server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith(("recog_batch_size_count", "recog_batch_size_sum")):
            name, value = line.rsplit(" ", 1)
            values[name.split("{")[0]] = float(value)
    count = values.get("recog_batch_size_count", 0.0)
    return count, values.get("recog_batch_size_sum", 0.0) / max(count, 1.0)


def measure(run: Path, work: Path, image: bytes, args, *, max_batch: int) -> dict:
    proc, url, log = start_server(run, work, max_batch=max_batch, max_wait_ms=args.max_wait_ms)
    try:
        server = psutil.Process(proc.pid)
        rss_idle = server.memory_info().rss
        asyncio.run(load(url, image, requests=args.warmup, concurrency=args.concurrency))
        rss_before = server.memory_info().rss
        passes_before, _ = batch_stats(url)
        result = asyncio.run(load(url, image, requests=args.requests, concurrency=args.concurrency))
        rss_after = server.memory_info().rss
        passes_after, _ = batch_stats(url)
        alive = proc.poll() is None
    finally:
        stop_server(proc, log)
    lat = sorted(result["latencies"])
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "max_batch": max_batch,
        "rps": len(lat) / result["seconds"],
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
        "errors": len(result["errors"]),
        "first_error": result["errors"][0] if result["errors"] else "",
        "mean_batch": args.requests / max(passes_after - passes_before, 1.0),
        "rss_idle": rss_idle / 2**20,
        "rss_before": rss_before / 2**20,
        "rss_after": rss_after / 2**20,
        "alive": alive,
    }


def table(rows: list[tuple[str, dict]]) -> str:
    lines = [
        "| server | req/s | p50 ms | p95 ms | p99 ms | errors | mean batch | RSS after warm-up MB | RSS after load MB | growth MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} "
            f"| {r['errors']} | {r['mean_batch']:.1f} | {r['rss_before']:.0f} | {r['rss_after']:.0f} "
            f"| {r['rss_after'] - r['rss_before']:+.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--run", type=Path, help="serve this run instead of training one")
    parser.add_argument("--quick", action="store_true", help="300 requests, 50 warm-up, no README")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/README.md")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup, args.no_append = min(args.requests, 300), 50, True

    head = header("recog serve under load: micro-batching vs --max-batch 1", seed=SEED)
    print(head)
    print(
        f"load: {args.requests} requests, {args.concurrency} concurrent clients, 256x256 JPEG, "
        f"model {args.model} at {args.img_size} px; micro-batching: max batch {args.max_batch}, "
        f"max wait {args.max_wait_ms} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        run = args.run
        if run is None:
            start = time.perf_counter()
            run = recog.train(
                "digits",
                args.model,
                epochs=1,
                img_size=args.img_size,
                seed=SEED,
                out=str(work / "run"),
            ).run_dir
            print(f"trained {args.model} for one epoch in {time.perf_counter() - start:.0f} s")
        image = test_image()
        rows = []
        for name, max_batch in (
            (f"micro-batching (max batch {args.max_batch})", args.max_batch),
            ("--max-batch 1", 1),
        ):
            print(f"measuring {name} ...", flush=True)
            rows.append((name, measure(run, work, image, args, max_batch=max_batch)))
    ratio = rows[0][1]["rps"] / rows[1][1]["rps"]
    out = table(rows)
    print()
    print(out)
    errors = sum(r["errors"] for _, r in rows)
    growth = max(r["rss_after"] - r["rss_before"] for _, r in rows)
    verdict = [
        f"micro-batching / batch 1: {ratio:.2f}x requests/s (target >= 1.5x: {'met' if ratio >= 1.5 else 'NOT met'})",
        f"errors: {errors} (target 0); largest memory growth {growth:+.1f} MB (target < 50 MB); "
        f"servers alive after the load: {all(r['alive'] for _, r in rows)}",
    ]
    for name, r in rows:
        if r["first_error"]:
            verdict.append(f"first error ({name}): {r['first_error']}")
    print("\n".join(verdict))
    if not args.no_append:
        setup = f"{args.requests} requests, {args.concurrency} clients, {args.model} at {args.img_size} px"
        readme = append_results("serve_load.py", head, setup, out, verdict)
        print(f"appended to {readme}")
    ok = errors == 0 and growth < 50 and ratio >= 1.5
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
