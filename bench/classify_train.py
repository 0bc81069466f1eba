"""Training throughput: `recog train` against a plain hand-written torchvision loop.

Same model (resnet18 from scratch), same data (../shared/data/hymenoptera,
or digits when it is absent), same image size, batch size, optimizer and
augmentation, measured in one run.  Throughput is training images per
second over the epochs after the first (warm-up), training phase only.
recog is measured three times: as it runs with no precision flag (`--amp
auto`: bf16 autocast where the CPU has it natively and the probe measured it
faster, the gain this bench shows), with its default in-memory cache of
decoded images; with `--cache off` as well, so both sides decode every JPEG
every epoch; and with `--amp off`, float32 as the plain loop.

    .venv/bin/python bench/classify_train.py [--epochs 4] [--img-size 128] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
import yaml
from torch.utils.data import DataLoader
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402

import recog  # noqa: E402
from recog.engine.logging import ResultsTable  # noqa: E402


def plain_loop(
    root: Path, *, epochs: int, img_size: int, batch_size: int, seed: int
) -> list[float]:
    """The loop a user would write from the torchvision docs; returns images/s per epoch."""
    torch.manual_seed(seed)
    tf = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(img_size, scale=(0.25, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.3, 0.3, 0.3),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )
    data = torchvision.datasets.ImageFolder(str(root / "train"), transform=tf)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    model = torchvision.models.resnet18(num_classes=len(data.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3 * batch_size / 64, weight_decay=0.05)
    rates = []
    for _ in range(epochs):
        model.train()
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def recog_run(
    data: str, *, epochs: int, img_size: int, batch_size: int, seed: int, cache: str, amp: str
) -> tuple[list[float], str]:
    """Training images/s per epoch, and the precision the run used (`amp` in config.yaml)."""
    with tempfile.TemporaryDirectory() as tmp:
        recog.train(
            data,
            "resnet18",
            epochs=epochs,
            img_size=img_size,
            batch_size=batch_size,
            seed=seed,
            cache=cache,
            amp=amp,
            out=str(Path(tmp) / "run"),
        )
        rows = ResultsTable.read(Path(tmp) / "run" / "results.csv")
        used = yaml.safe_load((Path(tmp) / "run" / "config.yaml").read_text())["amp"]
    return [float(r["train_images_per_second"]) for r in rows], str(used)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = SHARED_DATA / "hymenoptera"
    if not root.is_dir():
        print(
            f"{root} is absent: this benchmark needs the hymenoptera class folders", file=sys.stderr
        )
        return 1
    print(
        header(
            "classify_train: recog train vs a plain torchvision loop (resnet18, hymenoptera)",
            seed=args.seed,
        )
    )
    print(
        f"epochs {args.epochs} (first is warm-up), img {args.img_size}px, batch {args.batch_size}\n"
    )
    kw = dict(
        epochs=args.epochs, img_size=args.img_size, batch_size=args.batch_size, seed=args.seed
    )
    results = {"plain torchvision loop (float32)": (plain_loop(root, **kw), "off")}
    for name, cache, amp in (("recog train", "auto", "auto"),
                             ("recog train --cache off", "off", "auto"),
                             ("recog train --amp off", "auto", "off")):  # fmt: skip
        results[name] = recog_run(str(root), cache=cache, amp=amp, **kw)
    rate = {name: statistics.mean(r[1:] or r) for name, (r, _) in results.items()}
    base = rate["plain torchvision loop (float32)"]
    print(f"{'':34s} {'amp':>4s} {'img/s':>8s} {'ratio':>7s}")
    for name, value in rate.items():
        print(f"{name:34s} {results[name][1]:>4s} {value:8.1f} {value / base:6.2f}x")
    print(f"\nratio recog (no flags) / plain: {rate['recog train'] / base:.2f}x (target >= 1.3x)")
    print(f"ratio recog --amp off / plain: {rate['recog train --amp off'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
