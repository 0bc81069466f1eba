"""End-to-end prediction from files against the forward-only rate of the same exported model.

`recog predict RUN FILES --backend onnx` reads, decodes, resizes and predicts
(`Recognizer.predict`, batch 32); its images/s is set beside `recog bench`'s
onnxruntime rate at the same size and batch on ready uint8 tensors (no files, no
decoding: the ceiling). Two end-to-end rows, alternated round by round:

- scaled decoding (today): a JPEG is decoded at 1/2, 1/4 or 1/8 where the
  task's `prepare` needs no more (`Task.decode_size`);
- whole decoding (the peer: how `recog predict` read files before): every pixel
  decoded, then resized.

It also prints how often the two agree on the top class, and the top-1 of each
against the folders' labels, so the speed is not bought with answers.

    .venv/bin/python bench/predict_e2e.py RUN [--images ../shared/data/hymenoptera/val]

RUN: a classification run (exported to ONNX first where `RUN/export/model.onnx`
is missing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402


def _timed_predict(rec, files: list[Path], batch: int) -> tuple[float, list[int]]:
    start = time.perf_counter()
    results = rec.predict(files, batch_size=batch, reject=False)
    seconds = time.perf_counter() - start
    return len(files) / seconds, [int(r.scores.argmax()) for r in results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--images", type=Path, default=SHARED_DATA / "hymenoptera" / "val")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ns = ap.parse_args()
    print(header("predict_e2e: recog predict --backend onnx from files vs forward-only", seed=0))

    import recog
    from recog.data import find_images
    from recog.deploy.bench import bench

    if not (ns.run / "export" / "model.onnx").is_file():
        recog.load(ns.run).export("onnx")
    files = find_images([str(ns.images)])
    truth_names = [f.parent.name for f in files]

    scaled = recog.load(ns.run, backend="onnx")
    whole = recog.load(ns.run, backend="onnx")
    whole.task.decode_size = lambda width, height: None  # the peer: every pixel decoded
    size = int(scaled.config.img_size)
    print(
        f"run {ns.run} ({scaled.config.model} at {size} px), {len(files)} images from {ns.images}"
    )

    record = bench(scaled, batches=(ns.batch,), backends=("onnxruntime",))
    forward = next(r for r in record["rows"] if r["batch"] == ns.batch)["images_per_second"]

    rates: dict[str, list[float]] = {"scaled": [], "whole": []}
    answers: dict[str, list[int]] = {}
    for rec in (scaled, whole):
        rec.predict(files[: ns.batch], batch_size=ns.batch, reject=False)  # warm-up
    for _ in range(ns.rounds):
        for rec, name in ((scaled, "scaled"), (whole, "whole")):
            rate, answers[name] = _timed_predict(rec, files, ns.batch)
            rates[name].append(rate)

    names = scaled.class_names
    agree = sum(a == b for a, b in zip(answers["scaled"], answers["whole"], strict=True))

    def top1(name: str) -> float:
        return sum(names[a] == t for a, t in zip(answers[name], truth_names, strict=True)) / len(
            files
        )

    print()
    print(f"| pipeline | images/s (median of {ns.rounds}) | x forward-only | top-1 |")
    print("|---|---:|---:|---:|")
    print(
        f"| forward only (`recog bench`, onnxruntime, batch {ns.batch}) | {forward:.1f} | 1.00 | |"
    )
    for name, label in (("scaled", "recog predict --backend onnx, scaled decoding"),
                        ("whole", "recog predict --backend onnx, whole decoding (before)")):  # fmt: skip
        rate = statistics.median(rates[name])
        print(f"| {label} | {rate:.1f} | {rate / forward:.2f} | {top1(name):.4f} |")
    print()
    print(
        f"rounds: scaled {[round(r, 1) for r in rates['scaled']]}, whole {[round(r, 1) for r in rates['whole']]}"
    )
    print(f"top-class agreement scaled vs whole decoding: {agree}/{len(files)}")
    ratio = statistics.median(rates["scaled"]) / forward
    print(
        f"end to end / forward-only: {ratio:.3f}x (bar 0.8x); torch threads {torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
