"""COCO box evaluation: recog's DetectionAccumulator against plain pycocotools.

One generated, seeded prediction set (default 5,000 images, 10 classes, ~7
ground-truth boxes and ~100 detections per image: jittered hits, duplicates,
wrong classes, misses, near misses and background false positives, object
sizes spread over COCO's small/medium/large), evaluated both ways in one run:

  recog       DetectionAccumulator.update (Prediction/Target records, in batches
              of 32) + compute() -- record conversion included
  pycocotools COCO (dataset assignment + createIndex) + loadRes + COCOeval
              evaluate / accumulate / summarize, from ready-made COCO dicts
              (their construction is timed apart and not charged to it)

The numbers must agree to 1e-6; the ratio printed is pycocotools seconds / recog seconds.

    .venv/bin/python bench/detect_eval.py [--images 5000] [--classes 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import header  # noqa: E402

from recog.metrics.detection import DetectionAccumulator  # noqa: E402
from recog.types import Prediction, Target  # noqa: E402

W, H = 640, 480
KEYS = ("map", "map50", "map75", "map_small", "map_medium", "map_large", "mar_100")
TOL = 1e-6


def generate(
    n_images: int, n_classes: int, *, seed: int, gt_per_image: float = 7.0, dets: int = 100
) -> tuple[list[Prediction], list[Target]]:
    """Seeded detector-like output; see the module docstring."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g)

    def boxes(n: int) -> torch.Tensor:
        # log-uniform sides 6..300 px: about a third of the objects in each COCO size range
        wh = torch.exp(math.log(6) + rand(n, 2) * math.log(300 / 6))
        xy = rand(n, 2) * (torch.tensor([W, H]) - wh).clamp_min(0)
        return torch.cat([xy, xy + wh], dim=1)

    def jitter(src: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        side = (src[:, 2:] - src[:, :2]).repeat(1, 2)
        out = src + torch.randn(src.shape, generator=g) * scale.view(-1, 1) * side
        out[:, 2:] = torch.maximum(out[:, 2:], out[:, :2] + 1)
        return out

    preds, targets = [], []
    rates = torch.full((n_images,), gt_per_image)
    n_gts = torch.poisson(rates, generator=g).long().tolist()
    for n_gt in n_gts:
        gt = boxes(n_gt)
        gt_labels = torch.randint(0, n_classes, (n_gt,), generator=g)
        # 0..4 detections near each object; ~10% of objects get none (misses)
        copies = torch.where(
            rand(n_gt) < 0.1, 0, torch.randint(1, 5, (n_gt,), generator=g)
        ).clamp_max(dets)
        # (a list, not torch.repeat_interleave: that costs ~7 ms a call here, whatever the size)
        idx = torch.tensor([i for i, c in enumerate(copies.tolist()) for _ in range(c)]).long()
        first = torch.ones_like(idx, dtype=torch.bool)
        first[1:] = idx[1:] != idx[:-1]
        # the first copy is a good box; later copies are looser and score lower
        near = jitter(gt[idx], torch.where(first, 0.05, 0.25))
        wrong = rand(len(idx)) < 0.05
        near_labels = torch.where(
            wrong, torch.randint(0, n_classes, idx.shape, generator=g), gt_labels[idx]
        )
        near_scores = torch.where(first, 0.4 + 0.6 * rand(len(idx)), 0.5 * rand(len(idx)))
        n_fp = max(dets - len(idx), 0)
        scores = torch.cat([near_scores, 0.35 * rand(n_fp).pow(2)])
        preds.append(
            Prediction(
                boxes=torch.cat([near, boxes(n_fp)]),
                labels=torch.cat([near_labels, torch.randint(0, n_classes, (n_fp,), generator=g)]),
                scores=scores,
            )
        )
        targets.append(Target(boxes=gt, labels=gt_labels))
    return preds, targets


def run_recog(
    preds: list[Prediction], targets: list[Target], names: list[str]
) -> tuple[dict, float]:
    start = time.perf_counter()
    acc = DetectionAccumulator(names)
    for i in range(0, len(preds), 32):
        acc.update(preds[i : i + 32], targets[i : i + 32])
    out = acc.compute()
    return out, time.perf_counter() - start


def run_pycocotools(gt: dict, detections: list[dict]) -> tuple[dict, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    seconds = time.perf_counter() - start
    s = ev.stats
    out = dict(zip(KEYS, (s[0], s[1], s[2], s[3], s[4], s[5], s[8]), strict=True))
    precision = ev.eval["precision"]
    out["per_class"] = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            out["per_class"][coco_gt.cats[cat_id]["name"]] = float(p[p > -1].mean())
    return out, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        header(
            "detect_eval: recog DetectionAccumulator (faster-coco-eval) vs plain pycocotools",
            seed=args.seed,
        )
    )
    from importlib.metadata import version

    print(f"faster-coco-eval {version('faster-coco-eval')}, pycocotools {version('pycocotools')}")
    names = [f"class{k}" for k in range(args.classes)]
    start = time.perf_counter()
    preds, targets = generate(args.images, args.classes, seed=args.seed)
    n_gt = sum(len(t.labels) for t in targets)
    n_dt = sum(len(p.scores) for p in preds)
    print(
        f"data: {args.images} images, {args.classes} classes, {n_gt} ground-truth boxes "
        f"({n_gt / args.images:.1f}/image), {n_dt} detections ({n_dt / args.images:.1f}/image); "
        f"generated in {time.perf_counter() - start:.1f} s\n"
    )

    ours, t_recog = run_recog(preds, targets, names)

    start = time.perf_counter()
    builder = DetectionAccumulator(names)
    builder.update(preds, targets)
    gt, detections = builder.coco_dicts()
    t_dicts = time.perf_counter() - start
    del builder
    ref, t_coco = run_pycocotools(gt, detections)

    print(f"{'metric':16s} {'recog':>10s} {'pycocotools':>12s} {'|diff|':>9s}")
    worst = 0.0
    rows = [(key, ours[key], ref[key]) for key in KEYS]
    rows += [(f"AP {name}", ours["per_class"][name], ref["per_class"][name]) for name in names]
    for label, a, b in rows:
        worst = max(worst, abs(a - b))
        print(f"{label:16s} {a:10.6f} {b:12.6f} {abs(a - b):9.1e}")
    assert ours["per_class"].keys() == ref["per_class"].keys()
    assert worst <= TOL, f"recog and pycocotools differ by {worst:.3g} > {TOL}"
    print(f"all {len(rows)} numbers agree (max |diff| {worst:.1e} <= {TOL:g})\n")

    print(f"{'':44s} {'seconds':>8s}")
    print(f"{'recog: update (records) + compute':44s} {t_recog:8.2f}")
    print(f"{'pycocotools: COCO + loadRes + COCOeval':44s} {t_coco:8.2f}")
    print(f"{'(COCO dicts for pycocotools, not charged)':44s} {t_dicts:8.2f}")
    print(f"\nratio pycocotools / recog: {t_coco / t_recog:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
