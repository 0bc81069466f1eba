"""Batch prediction: streaming `recog predict --out` against today's gather-then-print path.

The bench writes N generated JPEGs (128-512 px a side, seeded) to a temporary
folder, trains a model for one epoch (its weights do not change the speed), and
times two commands on the same files, one after the other, each in a fresh
process:

- today's path: `recog predict RUN DIR --format json > FILE` (every prediction
  gathered in memory, one decode thread beside the model, printed at the end);
- streaming: `recog predict RUN DIR --out FILE.parquet` (its cores split between
  decoding workers and the model as `recog.batch.plan` measures; `--workers W`
  fixes W), written a part at a time.

images/s is given over the whole command, start-up (about 5 s of imports and
model loading here) included, and after start-up: (N - 32) / (T(N) - T(32)),
T(32) being the same command's time on the first batch of 32 images alone, so
the fixed cost both paths share drops out and what remains is the rate per
image, which is what decides a million-image job; peak memory is the largest sum over the command's process and all its
children, sampled every 50 ms with psutil, as RSS (which counts the pages a
forked worker shares with its parent once per process) and as PSS (shared
pages divided among their sharers: what the tree really holds).  Both sizes
(default 2,000 and 20,000) are run, so a memory that grows with the number of
images shows.

The default model, a width-16 `cnn` at 32 px, costs less than decoding its
input (0.4 ms an image on one core against 0.6-0.8 ms for the JPEG): the case of
any model on a GPU, where the decoding workers decide the speed.  A model that
costs more than decoding on these 2 cores (`--model resnet18 --img-size 128`,
8 ms an image) is bound by its own arithmetic, the plan gives it every core and
both paths run at its speed; there the remedy is more machines (`--engine ray`).

    .venv/bin/python bench/predict_stream.py [--images 2000 20000] [--model resnet18 --img-size 128]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header  # noqa: E402


def _write(args: tuple[Path, int, int]) -> None:
    from PIL import Image

    folder, start, stop = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        w, h = (int(v) for v in rng.integers(128, 513, 2))
        coarse = rng.integers(0, 256, (h // 32 + 2, w // 32 + 2, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
        noisy = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(
            folder / f"{i:06d}.jpg", quality=90
        )


def generate(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    have = len(list(folder.glob("*.jpg")))
    if have >= n:
        return
    chunks = [(folder, s, min(n, s + 500)) for s in range(have, n, 500)]
    with multiprocessing.Pool(2) as pool:
        pool.map(_write, chunks)


def _memory(tree: list[psutil.Process]) -> tuple[int, int]:
    rss = pss = 0
    for p in tree:
        try:
            info = p.memory_full_info()
            rss, pss = rss + info.rss, pss + getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss, pss


def timed(cmd: list[str], stdout_path: Path) -> tuple[float, float, float]:
    """(seconds, peak RSS MB, peak PSS MB) of the command's process tree."""
    with stdout_path.open("w") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        root = psutil.Process(proc.pid)
        peak_rss = peak_pss = 0
        while proc.poll() is None:
            try:
                rss, pss = _memory([root, *root.children(recursive=True)])
                peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
    return seconds, peak_rss / 2**20, peak_pss / 2**20


def _stream_start(recog_cmd: list[str], first: Path, out: Path, fixed: list[str]) -> float:
    return timed([*recog_cmd, str(first), "--out", str(out), *fixed], out.with_suffix(".log"))[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--img-size", type=int, default=32)
    ap.add_argument("--model-args", default="width=16", help="k=v,k=v for the model")
    ap.add_argument("--workers", type=int, help="fixed decoding workers (default: measured)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args()
    print(header("streaming recog predict --out vs gather-then-print recog predict", seed=ns.seed))
    model_args = dict(kv.split("=", 1) for kv in ns.model_args.split(",") if kv)
    model_args = {k: int(v) if v.isdigit() else v for k, v in model_args.items()}
    workers = "measured" if ns.workers is None else ns.workers
    print(
        f"model {ns.model} {model_args} at {ns.img_size} px, batch {ns.batch_size}, workers {workers}"
    )

    import recog

    rows = []
    with tempfile.TemporaryDirectory(prefix="recog-bench-") as tmp_name:
        tmp = Path(tmp_name)
        rec = recog.train("digits", ns.model, epochs=1, img_size=ns.img_size, batch_size=64,
                          seed=ns.seed, model_args=model_args, out=str(tmp / "run"))  # fmt: skip
        recog_cmd = [sys.executable, "-m", "recog", "predict", str(rec.run_dir)]
        first = tmp / "images-32"
        generate(first, 32)
        # the median of three: one start-up varies by a second on a shared machine
        start_today = statistics.median(
            timed([*recog_cmd, str(first), "--format", "json"], tmp / "t32.json")[0]
            for _ in range(3)
        )
        fixed = [] if ns.workers is None else ["--num-workers", str(ns.workers)]
        start_stream = statistics.median(
            _stream_start(recog_cmd, first, tmp / f"s32-{k}.parquet", fixed) for k in range(3)
        )
        print(f"start-up (32 images): today {start_today:.1f} s, streaming {start_stream:.1f} s")
        for n in ns.images:
            folder = tmp / f"images-{n}"
            t0 = time.perf_counter()
            generate(folder, n)
            print(f"{n} images generated in {time.perf_counter() - t0:.0f} s", flush=True)
            today = timed([*recog_cmd, str(folder), "--format", "json",
                           "--batch-size", str(ns.batch_size)], tmp / "today.json")  # fmt: skip
            out = tmp / f"stream-{n}.parquet"
            stream = timed([*recog_cmd, str(folder), "--out", str(out), "--batch-size",
                            str(ns.batch_size), *fixed], tmp / "stream.log")  # fmt: skip
            rows.append((n, today, stream))
            print(f"{n}: today {n / today[0]:.0f} img/s {today[2]:.0f} MB PSS, "
                  f"stream {n / stream[0]:.0f} img/s {stream[2]:.0f} MB PSS", flush=True)  # fmt: skip

    print(
        "\n| images | path | seconds | img/s | img/s after start-up | peak RSS MB | peak PSS MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    steady = {}
    for n, today, stream in rows:
        for key, name, (sec, rss, pss), base in (
            ("today", "today (--format json)", today, start_today),
            ("stream", f"stream (--out, workers {workers})", stream, start_stream),
        ):
            steady[key, n] = (n - 32) / max(sec - base, 1e-9)
            print(
                f"| {n} | {name} | {sec:.1f} | {n / sec:.0f} | {steady[key, n]:.0f} | {rss:.0f} | {pss:.0f} |"
            )
    print()
    for n, today, stream in rows:
        print(
            f"{n} images: streaming / today images/s = {today[0] / stream[0]:.2f}x whole command, "
            f"{steady['stream', n] / steady['today', n]:.2f}x after start-up (target >= 1.5x)"
        )
    if len(rows) > 1:
        (n0, t0, s0), (n1, t1, s1) = rows[0], rows[-1]
        print(
            f"peak PSS at {n1} / at {n0} images: today {t1[2] / t0[2]:.2f}x, streaming {s1[2] / s0[2]:.2f}x"
        )
        print(
            f"peak RSS at {n1} / at {n0} images: today {t1[1] / t0[1]:.2f}x, streaming {s1[1] / s0[1]:.2f}x"
        )


if __name__ == "__main__":
    main()
