"""Leaks between train and val: the bees set split at random against split by session.

`../shared/data/bees` holds 5,172 crops of single bees from 19 hive visits
(date + location) with a metadata table; frames of one visit are near copies
sharing one label.  This writes the CSV recog reads (`path,label,date,time,
location,health`, label = subspecies; the images copied beside it, since a CSV's
paths must lead down from its own folder), then, in one run:

(a) `recog train --data bees.csv --time T`: the random (per-class) split, as
    Ultralytics' `autosplit` or a plain `train_test_split` would make it;
(b) `recog train --data bees.csv --time T --group-by date,location`: every visit
    whole on one side (`recog.data.groups`);
and `recog data doctor` on each split (its leak summary and the metadata
columns that name the label).  Same budget for both; top-1 on each run's own
val split.  The gap between (a) and (b) is what the random split's number
overstates.

    .venv/bin/python bench/grouped_split.py [--time 6m] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, append_results, header  # noqa: E402

SEED = 0


def write_csv(work: Path) -> Path:
    bees = SHARED_DATA / "bees"
    if not (bees / "bee_data.csv").is_file():
        raise SystemExit(f"{bees}: not found (../shared/data/bees)")
    shutil.copytree(bees / "images", work / "images")
    out = work / "bees.csv"
    with open(bees / "bee_data.csv", newline="") as f, open(out, "w", newline="") as g:
        writer = csv.writer(g)
        writer.writerow(["path", "label", "date", "time", "location", "health"])
        for row in csv.DictReader(f):
            writer.writerow([f"images/{row['file']}", row["subspecies"], row["date"],
                             row["time"], row["location"], row["health"]])  # fmt: skip
    return out


def recog(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "recog", *args], capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"recog {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done, time.perf_counter() - start


def measure(data: Path, work: Path, name: str, budget: str, group: list[str]) -> dict:
    run = work / f"run-{name}"
    train, seconds = recog("train", "--data", str(data), "--time", budget, "--out", str(run),
                           *group)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    split = next((line.split("split", 1)[1].strip() for line in train.stderr.splitlines()
                  if line.startswith("  split ")), "random, per class")  # fmt: skip
    doc, _ = recog("data", "doctor", str(data), "--out", str(work / f"doctor-{name}"),
                   "--fold-steps", "10", "--json", *group)  # fmt: skip
    report = json.loads(doc.stdout)
    leaks = report["counts"].get("leak-near", 0) + report["counts"].get("leak-exact", 0)
    return {
        "name": name, "top1": metrics["top1"], "seconds": seconds, "split": split,
        "val": report["images"]["val"], "leaked": leaks,
        "columns": {m["column"]: m["lookup_accuracy"] for m in report["metadata_leaks"]},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--time", default="6m", help="each run's --time (default 6m)")
    parser.add_argument("--quick", action="store_true", help="print only (no bench/README.md)")
    args = parser.parse_args()
    head = header(
        "grouped_split.py: bees, random split against --group-by date,location", seed=SEED
    )
    print(head, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_csv(work)
        rows = [measure(data, work, "random", args.time, []),
                measure(data, work, "grouped", args.time, ["--group-by", "date,location"])]  # fmt: skip
    lines = ["| split | top-1 | val images | val/train pairs of near copies | metadata columns naming the label (val lookup accuracy) | seconds |",
             "| --- | ---: | ---: | ---: | --- | ---: |"]  # fmt: skip
    for r in rows:
        cols = ", ".join(f"{c} {v:.0%}" for c, v in r["columns"].items()) or "none"
        lines.append(f"| {r['name']}: {r['split']} | {r['top1']:.4f} | {r['val']} | "
                     f"{r['leaked']} | {cols} | {r['seconds']:.0f} |")  # fmt: skip
    text = "\n".join(lines)
    print(text)
    verdict = [f"random split top-1 {rows[0]['top1']:.4f} against {rows[1]['top1']:.4f} by "
               f"session: the random split overstates it by {rows[0]['top1'] - rows[1]['top1']:.4f}"]  # fmt: skip
    print(verdict[0])
    if not args.quick:
        print(
            append_results("grouped_split.py", head, f"--time {args.time} per run", text, verdict)
        )


if __name__ == "__main__":
    main()
