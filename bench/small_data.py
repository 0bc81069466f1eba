"""Little data: a tuned plain loop against `recog train` with flags and with none.

On full hymenoptera (245 training images) and on a 20-images-per-class subset
of its train/ folder that this script builds (copies, the same val/), in one
run, each scored on the same held-out val/ split:

(a) plain: a hand-written torchvision ResNet-18 loop from scratch, AdamW 2e-3
    with one-cycle, label smoothing 0.1, RandomResizedCrop(0.35-1), flip,
    colour jitter 0.3, batch 32, for `--epochs` epochs at `--img-size`;
    evaluated after every epoch (resize to size / 0.875, centre crop), so both
    its best epoch (what a checkpointing loop keeps, like recog) and its last
    are reported.  Decoded images are kept in memory (shorter side 2 x size)
    so the loop is not slowed by decoding 2592 px JPEGs every epoch.
(b) `recog train --model resnet18 --img-size S --epochs E` (the same model,
    size and epochs as flags; the rest from the recipe);
(c) `recog train --data PATH` with no flags at all.

    .venv/bin/python bench/small_data.py [--epochs 30] [--img-size 128] [--per-class 20]

Prints a table of top-1, best epoch and train seconds, and the ratios
(b)/(a) and (c)/(a).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DATA, header  # noqa: E402

SEED = 0
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class _Cached(Dataset):
    def __init__(self, folder: Path, side: int, transform) -> None:
        base = torchvision.datasets.ImageFolder(str(folder))
        self.classes = base.classes
        self.items = []
        for path, label in base.samples:
            with Image.open(path) as img:
                img = img.convert("RGB")
                scale = side / min(img.size)
                if scale < 1:
                    img = img.resize((round(img.width * scale), round(img.height * scale)))
                self.items.append((v2.functional.pil_to_tensor(img), label))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        image, label = self.items[i]
        return self.transform(image), label


def plain_loop(root: Path, *, epochs: int, img_size: int, seed: int) -> dict:
    torch.manual_seed(seed)
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    train_tf = v2.Compose(
        [
            v2.RandomResizedCrop(img_size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.3, 0.3, 0.3),
            *finish,
        ]
    )
    val_tf = v2.Compose(
        [v2.Resize(round(img_size / 0.875), antialias=True), v2.CenterCrop(img_size), *finish]
    )
    start = time.perf_counter()
    train = _Cached(root / "train", 2 * img_size, train_tf)
    val = _Cached(root / "val", 2 * img_size, val_tf)
    loader = DataLoader(train, batch_size=32, shuffle=True)
    model = torchvision.models.resnet18(num_classes=len(train.classes))
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * len(loader))
    accs = []
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(
                model(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=0.1
            )
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        right = 0
        with torch.inference_mode():
            for x, y in DataLoader(val, batch_size=64):
                right += int((model(x).argmax(1) == y).sum())
        accs.append(right / len(val))
    best = max(range(len(accs)), key=accs.__getitem__)
    return {
        "top1": accs[best],
        "last": accs[-1],
        "best_epoch": best + 1,
        "epochs": epochs,
        "seconds": time.perf_counter() - start,
    }


def recog_run(data: Path, out: Path, *flags: str) -> dict:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "recog", "train", "--data", str(data), "--out", str(out), *flags]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"recog train failed: {proc.stderr.strip().splitlines()[-1:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    rows = (out / "results.csv").read_text().splitlines()
    header_row = rows[0].split(",")
    last = float(rows[-1].split(",")[header_row.index("top1")])
    recipe = [
        line.strip()
        for line in proc.stderr.splitlines()
        if line.startswith(("recog train", "  recipe", "  why"))
    ]
    return {
        "top1": metrics["top1"],
        "last": last,
        "best_epoch": metrics["best_epoch"],
        "epochs": metrics["epochs_run"],
        "seconds": time.perf_counter() - start,
        "train_seconds": metrics["train_seconds"],
        "recipe": recipe,
    }


def subset(root: Path, per_class: int, out: Path) -> Path:
    """train/ with the first `per_class` images (sorted names) of each class, and val/ as is,
    copied (recog refuses links that leave a dataset's folder, issue 11)."""
    import shutil

    for folder in sorted(p for p in (root / "train").iterdir() if p.is_dir()):
        dest = out / "train" / folder.name
        dest.mkdir(parents=True)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        for f in files[:per_class]:
            shutil.copyfile(f, dest / f.name)
    shutil.copytree(root / "val", out / "val")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30, help="epochs of (a) and (b)")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--only", choices=["full", "subset"], help="run one dataset")
    args = ap.parse_args()
    print(
        header("small data: plain loop vs recog train (flags) vs recog train (no flags)", seed=SEED)
    )
    root = SHARED_DATA / "hymenoptera"
    if not root.is_dir():
        raise SystemExit(f"{root}: not found (the bench needs ../shared/data/hymenoptera)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = {"full": root, "subset": subset(root, args.per_class, tmp / f"sub{args.per_class}")}
        for name, data in sets.items():
            if args.only and name != args.only:
                continue
            label = "hymenoptera" if name == "full" else f"hymenoptera {args.per_class}/class"
            results = {
                "(a) plain loop": plain_loop(
                    data, epochs=args.epochs, img_size=args.img_size, seed=SEED
                ),
                "(b) recog, flags": recog_run(
                    data,
                    tmp / f"{name}-b",
                    "--model",
                    "resnet18",
                    "--img-size",
                    str(args.img_size),
                    "--epochs",
                    str(args.epochs),
                ),  # fmt: skip
                "(c) recog, no flags": recog_run(data, tmp / f"{name}-c"),
            }
            for who, r in results.items():
                rows.append((label, who, r))
                print(
                    f"{label} {who}: top-1 {r['top1']:.4f} (best epoch {r['best_epoch']}/"
                    f"{r['epochs']}), last {r['last']:.4f}, {r['seconds']:.0f} s",
                    flush=True,
                )
                for line in r.get("recipe", []):
                    print(f"    {line}", flush=True)
    print()
    print("| data | trainer | top-1 (best epoch) | top-1 (last epoch) | best / epochs | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, who, r in rows:
        print(
            f"| {label} | {who} | {r['top1']:.4f} | {r['last']:.4f} | "
            f"{r['best_epoch']}/{r['epochs']} | {r['seconds']:.0f} |"
        )
    print()
    for label in dict.fromkeys(r[0] for r in rows):
        mine = {who: r for lab, who, r in rows if lab == label}
        a = mine["(a) plain loop"]["top1"]
        for who in ("(b) recog, flags", "(c) recog, no flags"):
            ratio = mine[who]["top1"] / a if a else math.inf
            print(f"{label}: {who} / (a) top-1 = {ratio:.3f}x")


if __name__ == "__main__":
    main()
