"""`make demo`: train the from-parts CNN on scikit-learn's digits, evaluate, predict.

Leaves `runs/demo/digits-cnn/` (report.html, plots, metrics.json, weights)
and a folder of sample digit images with their predictions drawn.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from recog.cli import main as cli


def write_sample_images(out: Path, count: int = 8) -> Path:
    """A few held-out digits as PNG files, the way a user would have photos."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from recog.data.splits import seeded_split
    from recog.io import atomic_write_bytes

    digits = load_digits()
    out.mkdir(parents=True, exist_ok=True)
    # the validation split the demo run holds out (same split as `recog train`'s defaults)
    labels = [int(t) for t in digits.target]
    _, held_out = seeded_split(len(labels), 0.2, 0, labels=labels)
    rng = np.random.default_rng(7)
    for i in rng.choice(held_out, size=count, replace=False):
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        img = Image.fromarray(pixels, mode="L").resize((64, 64), Image.Resampling.NEAREST)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        atomic_write_bytes(out / f"digit-{i}-true{digits.target[i]}.png", buf.getvalue())
    return out


def main() -> int:
    run = Path("runs/demo/digits-cnn")
    steps = [
        [
            "train",
            "--data",
            "digits",
            "--model",
            "cnn",
            "--epochs",
            "15",
            "--out",
            str(run),
            "--exist-ok",
        ],  # fmt: skip
        ["val", str(run)],
    ]
    for argv in steps:
        print(f"\n$ recog {' '.join(argv)}", flush=True)
        if code := cli(argv):
            return code
    samples = write_sample_images(Path("runs/demo/samples"))
    argv = [
        "predict",
        str(run),
        str(samples),
        "--top-k",
        "3",
        "--save-dir",
        "runs/demo/predictions",
    ]
    print(f"\n$ recog {' '.join(argv)}", flush=True)
    if code := cli(argv):
        return code
    print(
        f"\nOpen {run / 'report.html'} in a browser; drawn predictions are in runs/demo/predictions/."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
