"""Explanation speed: `recog explain` against a plain pytorch-grad-cam loop, on the same run and images.

Both explain the same N images (default 32) of a run with Grad-CAM at the
run's input size on the CPU:

- peer: a hand-written loop over the images: decode, resize + centre crop,
  pytorch-grad-cam's `GradCAM` on the predicted class, one PNG overlay each;
- recog, in process: `Recognizer.explain(..., save_dir=...)`, which also
  writes the raw maps and scores every map (deletion and insertion AUC
  against a random map: 4 x 21 more forward passes an image);
- recog, the command: `recog explain RUN IMAGES --method gradcam`, wall
  time from process start (imports and model load included).

    .venv/bin/python bench/explain_speed.py RUN [--images 32] [--data FOLDER]

Without RUN arguments it trains a hymenoptera resnet18 at 128 px for 3
epochs first (speed does not depend on how well the model learned).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402


def peer(rec, files: list[Path], out: Path) -> float:
    """pytorch-grad-cam on the run's model, images prepared as recog's eval transform does."""
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from recog.data import read_image

    start = time.perf_counter()
    model = rec.model.eval()
    layer = model.layer4[-1]  # the layer pytorch-grad-cam's README uses for a ResNet
    out.mkdir(parents=True, exist_ok=True)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        for i, f in enumerate(files):
            prepared, _ = rec.task.prepare(read_image(f))
            x = rec.task.normalize(prepared[None])
            label = int(model(x).argmax())
            grey = cam(input_tensor=x, targets=[ClassifierOutputTarget(label)])[0]
            rgb = prepared.permute(1, 2, 0).numpy() / 255.0
            Image.fromarray(show_cam_on_image(rgb, grey, use_rgb=True)).save(out / f"{i}.png")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", type=Path)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "hymenoptera" / "val")
    args = ap.parse_args()
    print(header("explanations: recog explain vs a plain pytorch-grad-cam loop", seed=0))
    import recog
    from recog.data import find_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run = args.run
        if run is None:
            run = tmp / "run"
            recog.train(str(SHARED_DATA / "hymenoptera"), "resnet18", img_size=128, epochs=3,
                        out=str(run))  # fmt: skip
        rec = recog.load(run, device="cpu")
        files = find_images([str(args.data)])[: args.images]
        torch.set_num_threads(2)
        t_peer = peer(rec, files, tmp / "peer")
        start = time.perf_counter()
        maps = rec.explain(files, methods=["gradcam"], save_dir=tmp / "recog")
        t_recog = time.perf_counter() - start
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "recog", "explain", str(run), *map(str, files),
             "--method", "gradcam", "--save-dir", str(tmp / "cli")],
            capture_output=True, text=True,
        )  # fmt: skip
        t_cli = time.perf_counter() - start
        if proc.returncode:
            raise SystemExit(proc.stderr)
    beat = sum(
        e.scores["deletion_auc"] < e.scores["random_deletion_auc"]
        and e.scores["insertion_auc"] > e.scores["random_insertion_auc"]
        for e in maps
    )
    print(f"run: {run} ({rec.config.model} at {rec.img_size} px), {len(files)} images")
    print("| what | seconds | images/s |")
    print("| --- | ---: | ---: |")
    for name, t in (
        ("pytorch-grad-cam loop (map + overlay)", t_peer),
        ("recog Recognizer.explain (map, overlay, .npy, deletion/insertion scores)", t_recog),
        ("recog explain command (process start to exit)", t_cli),
    ):
        print(f"| {name} | {t:.2f} | {len(files) / t:.1f} |")
    print(f"recog / peer: {t_recog / t_peer:.2f}x in process, {t_cli / t_peer:.2f}x as a command")
    print(f"maps beating the random map on both deletion and insertion: {beat}/{len(maps)}")


if __name__ == "__main__":
    main()
