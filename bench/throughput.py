"""Single-node throughput of each task's default model: training and streaming prediction
images/s, against the bare model's forward on ready tensors (the ceiling the pipeline
can reach), for docs/scaling.md.

Per task, the model the recipe picks for photos on a CPU at its CPU size
(classify: resnet18 at 128 px, detect: yolo_n at 320, segment: unet at 256):

- train: `recog.train` on built-in data for two epochs; images/s of the second
  (the first pays set-up), training phase only (the run's `results.csv`);
- predict: `recog.batch.predict_stream` over N generated JPEGs (128-512 px),
  decoding, model, rows and Parquet writing included, cores split as measured;
- peer: the same model's `forward` in eval mode on random (batch, 3, S, S) tensors
  for the same number of images: no decoding, no resizing, no output.

    .venv/bin/python bench/throughput.py [--images 512] [--tasks classify detect segment]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header  # noqa: E402
from predict_stream import generate  # noqa: E402

#: task -> (built-in data, model, CPU image size): the recipe's defaults for photos on a CPU
DEFAULTS = {
    "classify": ("digits", "resnet18", 128),
    "detect": ("shapes:96:32", "yolo_n", 320),
    "segment": ("shapes:96:32", "unet", 256),
}


def bare_forward(rec, size: int, n: int, batch: int) -> float:
    """images/s of the model alone on ready tensors."""
    model = rec.model.eval()
    x = torch.rand(batch, 3, size, size)
    with torch.inference_mode():
        model(x)  # warm-up
        start, done = time.perf_counter(), 0
        while done < n:
            model(x)
            done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULTS), choices=list(DEFAULTS))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args()
    print(
        header(
            "single-node throughput: recog train / predict vs the bare model forward", seed=ns.seed
        )
    )
    import recog
    from recog.batch import job_settings, list_inputs, open_sink, predict_stream
    from recog.engine.logging import ResultsTable

    rows = []
    with tempfile.TemporaryDirectory(prefix="recog-throughput-") as tmp_name:
        tmp = Path(tmp_name)
        images = tmp / "images"
        generate(images, ns.images)
        names = list_inputs([str(images)])
        for task in ns.tasks:
            data, model, size = DEFAULTS[task]
            rec = recog.train(data, model, epochs=2, img_size=size, seed=ns.seed,
                              out=str(tmp / f"{task}-run"))  # fmt: skip
            train = ResultsTable.read(rec.run_dir / "results.csv")[-1]["train_images_per_second"]
            sink = open_sink(tmp / f"{task}.parquet",
                             job_settings(rec, top_k=5, batch_size=ns.batch_size, reject=True),
                             resume=False, batch_size=ns.batch_size)  # fmt: skip
            summary = predict_stream(rec, names, sink, batch_size=ns.batch_size, num_workers=None)
            peer = bare_forward(rec, size, ns.images, ns.batch_size)
            rows.append((task, model, size, float(train), summary.rate, peer))
            print(f"{task}: train {train:.1f} img/s, predict {summary.rate:.1f} img/s, "
                  f"bare forward {peer:.1f} img/s", flush=True)  # fmt: skip

    print(
        "\n| task | model | px | train img/s | predict img/s | bare forward img/s | predict / bare |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for task, model, size, train, pred, peer in rows:
        print(
            f"| {task} | {model} | {size} | {train:.1f} | {pred:.1f} | {peer:.1f} | {pred / peer:.2f}x |"
        )


if __name__ == "__main__":
    main()
