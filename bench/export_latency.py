"""Exported detector latency: recog's yolo_n ONNX against Ultralytics' own ONNX export of YOLOv8n.

Both at the same input size (320) and class count (the built-in shapes'), batch 1, exported by each tool's
own exporter with its defaults (a static batch of 1; neither puts NMS in the graph:
recog's ends at the decoded boxes and scores, Ultralytics' at its (1, 4 + C, A)
decoded tensor), then timed in one process by the same onnxruntime session options
(CPU provider, this machine's threads), in alternating rounds so that neither gets a
quieter machine.  recog's graph starts from uint8 pixels and normalizes inside;
Ultralytics' takes float [0, 1] pixels.  Weights do not change the cost, so both
graphs come from (next to) untrained models.

Ultralytics runs in its own virtual environment (`.bench/ultralytics-venv`, as in
`bench/detect_train.py`), which needs `onnx` and `onnxslim` for its exporter.

    .venv/bin/python bench/export_latency.py [--img-size 320] [--rounds 5] [--repeats 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, header  # noqa: E402

PEER_VENV = REPO / ".bench" / "ultralytics-venv"

PEER_EXPORT = textwrap.dedent(
    """
    import json, sys, pathlib, yaml
    from ultralytics import YOLO
    import ultralytics

    cfg = json.loads(sys.argv[1])
    src = pathlib.Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8.yaml"
    spec = yaml.safe_load(src.read_text())
    spec["nc"] = cfg["classes"]
    dest = pathlib.Path(cfg["work"]) / "yolov8n.yaml"  # the name carries the n scale
    dest.write_text(yaml.safe_dump(spec))
    model = YOLO(str(dest))
    path = model.export(format="onnx", imgsz=cfg["img_size"], batch=1, device="cpu")
    print(json.dumps({"path": str(path), "version": ultralytics.__version__}))
    """
)


def recog_export(img_size: int, work: Path) -> tuple[Path, int]:
    """A yolo_n run of one epoch on the built-in shapes (the weights do not change the cost),
    exported with recog's defaults but a static batch of 1, and its class count."""
    import recog
    from recog.deploy.export import write_onnx

    rec = recog.train("shapes:16:8", "yolo_n", epochs=1, img_size=img_size, batch_size=8,
                      out=str(work / "run"))  # fmt: skip
    return write_onnx(rec, work / "recog-yolo_n.onnx", dynamic_batch=False), len(rec.class_names)


def time_sessions(files: dict[str, tuple[Path, np.ndarray]], rounds: int, repeats: int) -> dict:
    import onnxruntime as ort

    sessions = {
        name: (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), x)
        for name, (path, x) in files.items()
    }
    times: dict[str, list[float]] = {name: [] for name in files}
    for session, x in sessions.values():  # warm-up
        feed = {session.get_inputs()[0].name: x}
        for _ in range(5):
            session.run(None, feed)
    for _ in range(rounds):
        for name, (session, x) in sessions.items():
            feed = {session.get_inputs()[0].name: x}
            for _ in range(repeats):
                start = time.perf_counter()
                session.run(None, feed)
                times[name].append(time.perf_counter() - start)
    return {
        name: {
            "latency_ms_p50": 1000 * statistics.median(t),
            "latency_ms_p95": 1000 * float(np.percentile(t, 95)),
            "runs": len(t),
            "size_mb": files[name][0].stat().st_size / 1e6,
        }
        for name, t in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--img-size", type=int, default=320)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--peer-venv", type=Path, default=PEER_VENV)
    args = ap.parse_args()
    print(
        header("exported detector latency: recog yolo_n ONNX vs Ultralytics YOLOv8n ONNX", seed=0)
    )
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="export-latency-") as tmp:
        work = Path(tmp)
        ours, classes = recog_export(args.img_size, work)
        peer = subprocess.run(
            [str(args.peer_venv / "bin" / "python"), "-c", PEER_EXPORT,
             json.dumps({"img_size": args.img_size, "work": str(work), "classes": classes})],
            capture_output=True, text=True, cwd=work, check=False,
        )  # fmt: skip
        if peer.returncode != 0:
            sys.exit(f"Ultralytics export failed: {peer.stderr.strip().splitlines()[-1:]}")
        info = json.loads(peer.stdout.strip().splitlines()[-1])
        print(f"onnxruntime {ort.__version__}; Ultralytics {info['version']}")
        rng = np.random.default_rng(0)
        size = args.img_size
        pixels = rng.integers(0, 256, (1, 3, size, size), dtype=np.uint8)
        result = time_sessions(
            {
                "recog yolo_n": (ours, pixels),
                # Ultralytics answers a path relative to its working directory
                "Ultralytics YOLOv8n": (work / info["path"], pixels.astype(np.float32) / 255),
            },
            args.rounds,
            args.repeats,
        )
    print(f"\nbatch 1 at {size} px, {args.rounds} alternating rounds of {args.repeats} runs")
    print("| model | p50 ms | p95 ms | file MB |\n|---|---:|---:|---:|")
    for name, row in result.items():
        print(
            f"| {name} | {row['latency_ms_p50']:.2f} | {row['latency_ms_p95']:.2f} | {row['size_mb']:.2f} |"
        )
    ratio = (
        result["recog yolo_n"]["latency_ms_p50"] / result["Ultralytics YOLOv8n"]["latency_ms_p50"]
    )
    print(f"\nratio recog / Ultralytics p50 latency: {ratio:.3f}x (at most 1.0 is the bar)")
    print(json.dumps({"img_size": size, "rows": result, "ratio_p50": ratio}))


if __name__ == "__main__":
    main()
