"""Small-data segmentation: `recog train` against a plain hand-written U-Net loop.

The peer is the loop a user writes around segmentation_models_pytorch (the
one the segmentation issue quotes): U-Net with a ResNet-18 encoder from
scratch, random 256 px crops with flips and right-angle rotations, batch 8,
cross-entropy plus Dice, AdamW with a one-cycle schedule, 300 steps.  recog
trains the same architecture on the same 24 training images for the same
300 steps (`--epochs 100 --batch-size 8`, 3 steps an epoch).  Both are then
scored by this script on the same 6 held-out images at full size, with one
numpy confusion matrix (mIoU over the two classes), so neither side grades
itself.  recog keeps the epoch that scored best on those held-out images;
its last-step weights are scored too, for a like-for-like comparison with
the peer's last step.  recog's time includes its evaluation of the held-out
images after every epoch.

    .venv/bin/python bench/segment_train.py [--steps 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402

import recog  # noqa: E402
from recog.data.formats.masks import split_pairs  # noqa: E402

CLASSES = ["membrane", "cell"]  # binary masks: 0 = membrane, 255 = cell
CROP, BATCH = 256, 8


def _load(pair) -> tuple[torch.Tensor, torch.Tensor]:
    image = np.asarray(Image.open(pair.image).convert("RGB"), dtype=np.float32) / 255.0
    mask = (np.asarray(Image.open(pair.mask).convert("L")) > 127).astype(np.int64)
    return torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(mask)


def _dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (total + 1)).mean()


def _batch(data, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in rng.integers(len(data), size=BATCH):
        image, mask = data[i]
        h, w = mask.shape
        top, left = rng.integers(h - CROP + 1), rng.integers(w - CROP + 1)
        x, y = (
            image[:, top : top + CROP, left : left + CROP],
            mask[top : top + CROP, left : left + CROP],
        )
        if rng.random() < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        if rng.random() < 0.5:
            x, y = x.flip(-2), y.flip(-2)
        k = int(rng.integers(4))
        xs.append(torch.rot90(x, k, (-2, -1)))
        ys.append(torch.rot90(y, k, (-2, -1)))
    return (torch.stack(xs) - 0.5) / 0.25, torch.stack(ys)


def plain_loop(train, *, steps: int, seed: int) -> tuple[torch.nn.Module, float]:
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = smp.Unet("resnet18", encoder_weights=None, classes=len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    data = [_load(p) for p in train]
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        x, y = _batch(data, rng)
        logits = model(x)
        loss = F.cross_entropy(logits, y) + _dice_loss(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval(), time.perf_counter() - start


def miou(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, list[float]]:
    """Mean IoU over the classes from one confusion matrix summed over all images."""
    c = len(CLASSES)
    confusion = np.zeros((c, c), np.int64)
    for truth, guess in pairs:
        confusion += np.bincount(truth.ravel() * c + guess.ravel(), minlength=c * c).reshape(c, c)
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    ious = (inter / np.maximum(union, 1)).tolist()
    return float(np.mean(ious)), ious


@torch.no_grad()
def score_plain(model: torch.nn.Module, val) -> tuple[float, list[float]]:
    out = []
    for pair in val:
        image, mask = _load(pair)
        logits = model(((image - 0.5) / 0.25)[None])  # 512 px: divisible by 32
        out.append((mask.numpy(), logits.argmax(1)[0].numpy()))
    return miou(out)


def recog_run(root: Path, val, *, steps: int, seed: int, out: Path) -> dict[str, tuple]:
    """recog's output (the best epoch on the held-out images, as recog keeps it) and,
    for a like-for-like comparison with the peer's last step, the last epoch's weights."""
    from recog.io import load_checkpoint

    rec = recog.train(
        str(root),
        "unet",
        classes=",".join(CLASSES),
        img_size=CROP,
        batch_size=BATCH,
        epochs=max(1, steps // 3),  # 24 training images: 3 steps an epoch
        augment="strong",
        seed=seed,
        out=str(out),
    )
    seconds = float(json.loads((out / "metrics.json").read_text())["train_seconds"])
    truths = [_load(p)[1].numpy() for p in val]
    files = [str(p.image) for p in val]

    def score() -> tuple:
        guesses = [pred.mask.cpu().numpy() for pred in rec.predict(files)]
        return (*miou(list(zip(truths, guesses, strict=True))), seconds)

    scores = {"recog train (best epoch)": score()}
    rec.model.load_state_dict(load_checkpoint(out / "last.ckpt")["model"])
    scores["recog train (last step)"] = score()
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = SHARED_DATA / "membrane"
    if not (root / "images").is_dir():
        print(
            f"{root} is absent: this benchmark needs the membrane images and masks", file=sys.stderr
        )
        return 1
    print(header("segment_train: recog train vs a plain smp U-Net loop (membrane)", seed=args.seed))
    train, val, _ = split_pairs(root, val_split=0.2, seed=args.seed)
    print(
        f"{len(train)} training / {len(val)} held-out images, {args.steps} steps of batch {BATCH}\n"
    )
    plain, plain_s = plain_loop(train, steps=args.steps, seed=args.seed)
    plain_miou, plain_ious = score_plain(plain, val)
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            "plain smp loop": (plain_miou, plain_ious, plain_s),
            **recog_run(root, val, steps=args.steps, seed=args.seed, out=Path(tmp) / "run"),
        }
    print(f"{'':26s} {'mIoU':>6s} {'membrane':>9s} {'cell':>6s} {'train s':>8s}")
    for name, (m, ious, s) in results.items():
        print(f"{name:26s} {m:6.3f} {ious[0]:9.3f} {ious[1]:6.3f} {s:8.0f}")
    last = results["recog train (last step)"]
    print(
        f"\nratio recog (last step) / plain: mIoU {last[0] / plain_miou:.3f}x,"
        f" train time {last[2] / plain_s:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
