"""Detection training: recog against Ultralytics YOLOv8n, side by side.

Ultralytics trains from scratch (`yolov8n.yaml`, no pretrained weights);
recog's rows are chosen with `--recog`: `noflags` (no flags at all: the
recipe's default, `yolo_lite0` fine-tuned from the ImageNet weights that pip
installed, where the package is there), `scratch` (`--weights none`: the
from-scratch recipe, `yolo_n`), `epochs` (only `--epochs`), `same` (the
peer's settings).  All train on the same YOLO-format data, written once by `recog data split`
(the fixed-seed 160/40 split of ../shared/data/raccoon by default), at the
same image size, batch size and number of epochs, on the CPU.  Reported:

- training throughput: epochs x training images / training seconds, where
  the training seconds include each tool's own per-epoch validation;
- COCO mAP@[.5:.95] and mAP50 of both models, computed by the same evaluator
  (recog's, faster-coco-eval) on the same validation images from each
  model's predictions in original-image pixels; Ultralytics' own `val`
  figures are printed beside its row for reference.

Ultralytics is a peer to measure against, never a dependency of recog: the
script installs it into its own virtual environment (`.bench/ultralytics-venv`,
torch from this machine's local wheels) on first use and runs it there.

    .venv/bin/python bench/detect_train.py [--epochs 60] [--img-size 320] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, SHARED_DATA, header  # noqa: E402

from recog.data.formats.detection import read_detection  # noqa: E402
from recog.metrics.detection import DetectionAccumulator  # noqa: E402
from recog.types import Prediction, Target  # noqa: E402

PEER_VENV = REPO / ".bench" / "ultralytics-venv"
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")

# Runs inside the peer's venv: train, validate, then predict the validation images.
PEER_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from ultralytics import YOLO

    cfg = json.loads(sys.argv[1])
    model = YOLO("yolov8n.yaml")
    start = time.perf_counter()
    model.train(data=cfg["data"], epochs=cfg["epochs"], imgsz=cfg["img_size"],
                batch=cfg["batch_size"], device="cpu", workers=cfg["workers"],
                project=cfg["out"], name="train", exist_ok=True, pretrained=False,
                amp=False, plots=False, seed=cfg["seed"], verbose=False)
    train_seconds = time.perf_counter() - start
    own = model.val(data=cfg["data"], imgsz=cfg["img_size"], batch=cfg["batch_size"],
                    device="cpu", plots=False, split="val", verbose=False)
    preds = []
    for image in cfg["val_images"]:
        r = model.predict(source=image, imgsz=cfg["img_size"], conf=0.001, iou=0.7,
                          max_det=100, device="cpu", verbose=False)[0]
        preds.append({"path": image, "boxes": r.boxes.xyxy.tolist(),
                      "scores": r.boxes.conf.tolist(), "labels": r.boxes.cls.int().tolist()})
    json.dump({"train_seconds": train_seconds, "own_map": float(own.box.map),
               "own_map50": float(own.box.map50), "predictions": preds},
              open(cfg["result"], "w"))
    """
)


def ensure_peer(venv: Path) -> Path:
    """The peer venv's python, creating the venv and installing Ultralytics when needed."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import ultralytics"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing Ultralytics into {venv} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *TORCH_PINS], check=True)
    subprocess.run([*pip, "ultralytics"], check=True)
    return python


def coco_scores(predictions: list[dict], truth: dict[str, Target], classes: list[str]) -> dict:
    """COCO box metrics of per-image predictions against the validation truth."""
    acc = DetectionAccumulator(classes)
    for p in predictions:
        acc.update(
            [
                Prediction(
                    boxes=torch.tensor(p["boxes"], dtype=torch.float32).reshape(-1, 4),
                    labels=torch.tensor(p["labels"], dtype=torch.int64),
                    scores=torch.tensor(p["scores"], dtype=torch.float32),
                )
            ],
            [truth[os.path.basename(p["path"])]],
        )
    return acc.compute()


def run_peer(python: Path, data: Path, val_images: list[str], args, work: Path) -> dict:
    result = work / "ultralytics.json"
    cfg = {
        "data": str(data / "data.yaml"),
        "epochs": args.epochs,
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "seed": args.seed,
        "out": str(work / "ultralytics"),
        "val_images": val_images,
        "result": str(result),
    }
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(work / "ultra-config")}
    proc = subprocess.run(
        [str(python), "-c", PEER_SCRIPT, json.dumps(cfg)], env=env, cwd=work, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"Ultralytics run failed (exit {proc.returncode}); see its output above")
    return json.loads(result.read_text())


def recog_rows(args) -> dict[str, list[str]]:
    """The recog runs to make: no flags at all, only --epochs, and every setting as the peer's."""
    same = [
        "--model", "yolo_n", "--epochs", str(args.epochs), "--img-size", str(args.img_size),
        "--batch-size", str(args.batch_size), "--workers", str(args.workers),
        "--seed", str(args.seed),
    ]  # fmt: skip
    rows = {
        "noflags": ("recog, no flags", []),
        "scratch": ("recog, --weights none (from scratch)", ["--weights", "none"]),
        "epochs": (f"recog, --epochs {args.epochs}", ["--epochs", str(args.epochs)]),
        "same": ("recog, peer's settings", same),
    }
    return {rows[k][0]: rows[k][1] for k in args.recog.split(",")}


def run_recog(data: Path, flags: list[str], work: Path, name: str) -> dict:
    out = work / name
    cmd = [sys.executable, "-m", "recog", "train", "--data", str(data), *flags, "--out", str(out)]
    subprocess.run(cmd, check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    metrics["epochs"] = metrics["epochs_run"]
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "raccoon")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    ap.add_argument("--work", type=Path, default=None, help="keep runs here (default: a temp dir)")
    ap.add_argument(
        "--recog",
        default="noflags,epochs",
        help="recog runs, comma-separated: noflags (no flags at all), scratch (--weights none), "
        "epochs (only --epochs), same (the peer's epochs, size and batch)",
    )
    args = ap.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found (the raccoon set lives in ../shared/data)")
    print(header("detection training: recog vs Ultralytics YOLOv8n", seed=args.seed))
    python = ensure_peer(args.peer_venv)
    peer_version = subprocess.run(
        [str(python), "-c", "import ultralytics; print(ultralytics.__version__)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    print(f"peer: ultralytics {peer_version} in {args.peer_venv}")
    print(
        f"data: {args.data}, {args.epochs} epochs, {args.img_size} px, batch {args.batch_size}",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="recog-bench-") as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        subprocess.run(
            [sys.executable, "-m", "recog", "data", "split", str(args.data), str(data),
             "--seed", str(args.seed)],
            check=True,
        )  # fmt: skip
        ann = read_detection(data)
        val = [r for r in ann.records if r.split == "val"]
        n_train = sum(r.split == "train" for r in ann.records)
        truth = {r.path.name: Target(boxes=r.boxes, labels=r.labels) for r in val}
        val_images = [str(data / "images" / "val" / r.path.name) for r in val]

        ours = {
            label: run_recog(data, flags, work, f"recog-{i}")
            for i, (label, flags) in enumerate(recog_rows(args).items())
        }
        peer = run_peer(python, data, val_images, args, work)
        theirs = coco_scores(peer["predictions"], truth, ann.class_names)

        peer_rate = args.epochs * n_train / peer["train_seconds"]
        print("\n| tool | epochs | train s | img/s | mAP50 | mAP |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for label, m in ours.items():
            rate = m["epochs"] * n_train / m["train_seconds"]
            print(
                f"| {label} | {m['epochs']} | {m['train_seconds']:.0f} | {rate:.1f} | "
                f"{m['map50']:.3f} | {m['map']:.3f} |"
            )
        print(
            f"| Ultralytics YOLOv8n, its defaults | {args.epochs} | {peer['train_seconds']:.0f} | "
            f"{peer_rate:.1f} | {theirs['map50']:.3f} | {theirs['map']:.3f} |"
        )
        print(f"(Ultralytics' own val: mAP50 {peer['own_map50']:.3f}, mAP {peer['own_map']:.3f})")
        for label, m in ours.items():
            print(
                f"{label} / Ultralytics: mAP {m['map'] / max(theirs['map'], 1e-9):.2f}x, "
                f"mAP50 {m['map50'] / max(theirs['map50'], 1e-9):.2f}x, "
                f"train time {m['train_seconds'] / peer['train_seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
