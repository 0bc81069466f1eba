"""Near duplicates: the hashes alone against hashes + embeddings, on planted near copies.

For each set (hymenoptera's train + val photos, raccoon's photos, membrane's
EM slices), `--copies` originals per kind get a planted near copy:

- standard: cropped 2-6 % a side, resized to 50-80 %, JPEG quality 60/70/85
  (the copies docs/doctor.md measured the hash limit with);
- flip: mirrored left-right (an augmented copy saved back into the set);
- rotate: turned 4-8 degrees and cropped 8 % a side (a re-shot or a re-scan);
- colour: brightness x0.75-1.3, contrast x0.8-1.2, saturation x0.6-1.4 (an edit);
- crop: cropped 10-20 % a side (a zoomed-in copy);
- mirror+: mirrored, then as standard (a mirrored copy saved smaller);

each saved at JPEG quality 85 (standard and mirror+: their own).  Then every image is
scanned as the doctor scans (`recog.doctor.scan.scan_files`: pHash + dHash)
and embedded with EfficientNet-Lite0's untouched ImageNet features
(`recog.doctor.evidence.pretrained_features`) and, with `--run RUN` (a
hymenoptera classifier), the run's penultimate features.  A pair counts as
planted when it is (original, its copy); as real distinct when it is
neither planted nor the same file nor near by the doctor's hash rule on the
untouched originals (raccoon's re-encoded copies, docs/doctor.md).

Printed: per kind, the planted pairs' hash bits and cosines; the highest
cosine among real distinct pairs; then, for rules "hashes alone", "hashes or
(cosine >= T and bits <= 40)" and "hashes or cosine >= T" at several T,
the recall of each kind and the false pairs.  Finally the doctor's own
`find_duplicates` with and without the embeddings.

    OMP_NUM_THREADS=1 nice .venv/bin/python bench/doctor_near_duplicates.py [--run RUN]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED_DATA, header  # noqa: E402

SEED = 0
EXT = (".jpg", ".jpeg", ".png")
KINDS = ("standard", "flip", "rotate", "colour", "crop", "mirror+")
THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.97)
GATE_BITS = 40  # the doctor's EMBED_BITS


def _cut(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    return img.crop((int(w * frac), int(h * frac), w - int(w * frac), h - int(h * frac)))


def plant(kind: str, img: Image.Image, rng: random.Random) -> tuple[Image.Image, int]:
    """A near copy of `img` of `kind`, and the JPEG quality to save it at."""
    if kind == "standard":
        img = _cut(img, rng.uniform(0.02, 0.06))
        scale = rng.uniform(0.5, 0.8)
        return img.resize((int(img.width * scale), int(img.height * scale))), rng.choice(
            (60, 70, 85)
        )
    if kind == "flip":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 85
    if kind == "rotate":
        angle = rng.uniform(4, 8) * rng.choice((-1, 1))
        return _cut(img.rotate(angle, Image.Resampling.BILINEAR), 0.08), 85
    if kind == "colour":
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.75, 1.3))
        img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.8, 1.2))
        return ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4)), 85
    if kind == "mirror+":
        return plant("standard", img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rng)
    if kind == "crop":
        return _cut(img, rng.uniform(0.10, 0.20)), 85
    raise ValueError(kind)


def _files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.rglob("*")) if p.suffix.lower() in EXT]


def _cosines(feats: np.ndarray) -> np.ndarray:
    e = feats.astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
    return e @ e.T


def _bits(scans) -> np.ndarray:
    h = np.stack([np.concatenate([s.phash, s.dhash]) for s in scans]).astype(np.int16)
    return (h[:, None, :] != h[None, :, :]).sum(axis=2)


def measure(name: str, originals: list[Path], copies: int, work: Path, run=None) -> None:
    from recog.data.inventory import Entry
    from recog.doctor.duplicates import IMAGENET_RULE, RUN_RULE, find_duplicates, near_limit
    from recog.doctor.evidence import pretrained_features, run_features
    from recog.doctor.scan import scan_files

    rng = random.Random(SEED)
    per_kind = min(copies, len(originals) // len(KINDS))
    chosen = rng.sample(range(len(originals)), per_kind * len(KINDS))
    paths = list(originals)
    planted: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}
    for n, i in enumerate(chosen):
        kind = KINDS[n // per_kind]
        with Image.open(originals[i]) as img:
            copy, quality = plant(kind, img.convert("RGB"), rng)
        dst = work / f"{name}-{kind}-{n}.jpg"
        copy.save(dst, quality=quality)
        planted[kind].append((i, len(paths)))
        paths.append(dst)
    scans = scan_files(paths)
    bits = _bits(scans)
    n_orig = len(originals)
    sides = [min(s.width, s.height) for s in scans]
    found = pretrained_features(paths, sides)
    embeddings = {} if found is None else {"ImageNet": found[0]}
    if run is not None:
        embeddings["run"] = run_features(run, paths)
    for ename in list(embeddings):  # centred on the set's mean: look-alike sets spread apart
        embeddings[ename + " centred"] = embeddings[ename] - embeddings[ename].mean(axis=0)
    off = bits + 999 * np.eye(len(paths), dtype=np.int16)
    limit = near_limit(off[:n_orig, :n_orig].min(axis=1))
    # one group per picture: a copy, the same file, the set's own re-encodings (within the
    # hash limit among the originals), and so a copy of one of two identical originals
    group = list(range(len(paths)))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    same = [(i, j) for v in planted.values() for i, j in v]
    same += [
        (i, j) for i in range(len(paths)) for j in range(i) if scans[i].sha256 == scans[j].sha256
    ]
    same += [tuple(p) for p in np.argwhere(off[:n_orig, :n_orig] <= limit)]
    for i, j in same:
        group[root(int(i))] = root(int(j))
    roots = np.array([root(i) for i in range(len(paths))])
    distinct = np.triu(roots[:, None] != roots[None, :], 1)
    print(f"\n## {name}: {n_orig} originals + {len(paths) - n_orig} planted copies "
          f"({per_kind} of each kind); hash limit {limit:.1f} bits; "
          f"{int(distinct.sum())} real distinct pairs")  # fmt: skip
    print(f"closest real distinct pair by hashes: {int(bits[distinct].min())} bits")
    for kind, pairs in planted.items():
        b = [int(bits[i, j]) for i, j in pairs]
        line = f"  {kind:8s} bits {min(b):3d}-{max(b):3d}, by hashes {sum(x <= limit for x in b)}/{len(b)}"
        for ename, feats in embeddings.items():
            c = _cosines(feats)
            cs = [c[i, j] for i, j in pairs]
            line += f"; {ename} cosine {min(cs):.3f}-{max(cs):.3f}"
        print(line)
    for ename, feats in embeddings.items():
        c = _cosines(feats)
        top = np.argsort(-np.where(distinct, c, -1), axis=None)[:3]
        rows = [np.unravel_index(t, c.shape) for t in top]
        nn = np.where(np.eye(len(paths), dtype=bool), -1, c)[:n_orig, :n_orig].max(axis=1)
        above = [sum(c[i, j] > c[distinct].max() for i, j in planted[k]) for k in KINDS]
        print(f"{ename}: median nearest-neighbour cosine of the originals {np.median(nn):.3f}; "
              "planted above every real distinct pair: "
              + ", ".join(f"{k} {a}/{per_kind}" for k, a in zip(KINDS, above, strict=True)))  # fmt: skip
        print(f"{ename}: highest real distinct cosines: " + ", ".join(
            f"{c[r, k]:.3f} ({paths[r].name} ~ {paths[k].name}, {int(bits[r, k])} bits)" for r, k in rows
        ))  # fmt: skip
        print(f"  {'rule':32s} " + " ".join(f"{k:>8s}" for k in KINDS) + "  false pairs")
        by_hash = bits <= limit
        for gate in (True, False):
            for t in THRESHOLDS:
                near = by_hash | ((c >= t) & ((bits <= GATE_BITS) if gate else True))
                rec = [sum(bool(near[i, j]) for i, j in planted[k]) / per_kind for k in KINDS]
                label = f"hashes or cos>={t}" + (f", bits<={GATE_BITS}" if gate else "")
                print(f"  {label:32s} " + " ".join(f"{r:8.2f}" for r in rec)
                      + f"  {int((near & distinct).sum())}")  # fmt: skip
        rec = [sum(bool(by_hash[i, j]) for i, j in planted[k]) / per_kind for k in KINDS]
        print(f"  {'hashes alone':32s} " + " ".join(f"{r:8.2f}" for r in rec)
              + f"  {int((by_hash & distinct).sum())}")  # fmt: skip
    entries = [Entry(p, "train") for p in paths]
    index = {str(p): k for k, p in enumerate(paths)}
    rows = [("hashes alone", None, RUN_RULE)]
    rows += [
        (f"hashes + ImageNet, {_rule(IMAGENET_RULE)}", embeddings.get("ImageNet"), IMAGENET_RULE)
    ]
    if "run" in embeddings:
        rows += [
            (f"hashes + run, {_rule(r)}", embeddings["run"], r) for r in (RUN_RULE, IMAGENET_RULE)
        ]
    print(f"the doctor's find_duplicates:\n  {'rule':48s} " + " ".join(f"{k:>8s}" for k in KINDS)
          + "  false pairs")  # fmt: skip
    for label, feats, rule in rows:
        if feats is None and label != "hashes alone":
            continue
        got = {tuple(sorted(index[p] for p in f.files))
               for f in find_duplicates(entries, scans, feats, rule) if f.kind == "duplicate-near"}  # fmt: skip
        rec = [sum(tuple(sorted(p)) in got for p in planted[k]) for k in KINDS]
        false = [(paths[i].name, paths[j].name) for i, j in got if roots[i] != roots[j]]
        print(f"  {label:48s} " + " ".join(f"{r:5d}/{per_kind:<2d}" for r in rec)
              + f"  {len(false)} {false[:4]}")  # fmt: skip


def _rule(rule) -> str:
    gate = "" if rule.within_bits is None else f", bits<={rule.within_bits}"
    return f"{'centred ' if rule.centred else ''}cos>={rule.cosine}{gate}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a hymenoptera classifier's run (its embeddings compared too)")
    ap.add_argument("--copies", type=int, default=20, help="planted copies of each kind")
    ap.add_argument("--sets", default="hymenoptera,raccoon,membrane")
    args = ap.parse_args()
    print(header("Near duplicates: hashes alone vs hashes + embeddings", seed=SEED))
    import recog

    run = recog.load(args.run) if args.run else None
    folders = {"hymenoptera": "hymenoptera", "raccoon": "raccoon/images",
               "membrane": "membrane/images"}  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="neardup-"))
    try:
        for name in args.sets.split(","):
            originals = _files(SHARED_DATA / folders[name])
            measure(name, originals, args.copies, work, run if name == "hymenoptera" else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
