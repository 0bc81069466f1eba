"""Exact and near duplicates among a dataset's images, leaks across train/val first.

Exact: the same SHA-256 of the file's bytes.  Near: pHash and dHash (64 bits
each, imagehash) differing in at most `NEAR_BITS` of their 128 bits together
and in at most `NEAR_FRACTION` of the median distance between an image and its
nearest neighbour (in a set of look-alike images, EM slices or upscaled digits,
every image lies within 28 bits of another: there the pair must be much closer
than the set's usual neighbours), or, when a model gives embeddings, close by a
`CosineRule`: EfficientNet-Lite0's untouched ImageNet features (`IMAGENET_RULE`,
below) or, where those are missing, a run's own (`RUN_RULE`: a cosine of at least
0.97 with the hashes within 40 bits; the embedding alone would pair two photos of
one kind of scene).  The thresholds are measured
(docs/doctor.md): on hymenoptera with planted copies resized to 50-80 %,
re-encoded at JPEG quality 60-85 and cropped by 2-6 % a side, the planted
pairs differed by 9-22 bits, while the closest of the 86,700 other pairs
differed by 35; the median nearest-neighbour distance was 43 bits there, 44 on
raccoon, 26 on membrane and 18 on 32-px digits.  A group of more than two identical files is reported as
pairs with its first file, so each finding is one pair the page can show.

The ImageNet rule, measured (bench/doctor_near_duplicates.py, docs/doctor.md):
near copies the hashes miss (mirrored: 41-74 bits; turned 4-8 degrees: 16-55
bits) keep a cosine of 0.84-0.97 and 0.70-0.92 once the features are centred on
the set's mean (the centring spreads a set of look-alikes apart: raw cosines of
distinct EM slices reach 0.945, centred 0.74), while the closest real distinct
pair has 0.71 on hymenoptera (517 images with planted copies), 0.66 on raccoon
(320) and 0.74 on membrane (60).  At 0.8 with no hash gate (a 40-bit gate
would drop every mirrored copy): mirrored copies 20/20 and 20/20 found, turned
17/20 and 13/20, planted copies in all 89/120 and 86/120 where the hashes alone
found 40 and 40, and zero false pairs on all three sets.  A hymenoptera run
fine-tuned from the same weights draws distinct photos of a class together
(its closest distinct pair 0.77 centred) and found 72/120 at 0.8: the ImageNet
features are used whenever they are there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recog.data.inventory import Entry, Finding
from recog.doctor.scan import Scan

NEAR_BITS = 28
NEAR_FRACTION = 0.6


@dataclass(frozen=True)
class CosineRule:
    """When two images' embeddings make them near: a cosine of at least `cosine`, of the
    features centred on the set's mean where `centred`, with the hashes within `within_bits`
    (None: any)."""

    cosine: float
    within_bits: int | None
    centred: bool


IMAGENET_RULE = CosineRule(0.8, None, True)
RUN_RULE = CosineRule(0.97, 40, False)


def near_limit(nearest: np.ndarray) -> float:
    """The bits two images may differ by and be near duplicates: `NEAR_BITS`, or
    `NEAR_FRACTION` of the median nearest-neighbour distance where the set's images are
    alike (greyscale slices of one stack, upscaled digits)."""
    if nearest.size < 2:
        return float(NEAR_BITS)
    return min(float(NEAR_BITS), NEAR_FRACTION * float(np.median(nearest)))


def _pair_split(a: Entry, b: Entry) -> str:
    return a.split if a.split == b.split else "/".join(sorted((a.split, b.split)))


def _order(a: int, b: int, entries: Sequence[Entry]) -> tuple[int, int]:
    """(keep, drop): the pair's file a fix would remove comes second; across splits the
    training copy goes (validation stays the measure it was)."""
    ea, eb = entries[a], entries[b]
    if ea.split != eb.split:
        return (a, b) if ea.split == "val" else (b, a)
    return (a, b) if str(ea.path) <= str(eb.path) else (b, a)


def _finding(kind: str, keep: int, drop: int, entries: Sequence[Entry], **detail) -> Finding:
    a, b = entries[keep], entries[drop]
    split = _pair_split(a, b)
    leak = a.split != b.split
    what = "the same file as" if kind.endswith("exact") else "a near copy of"
    kind = ("leak-" if leak else "duplicate-") + kind
    where = f"across {split}" if leak else f"in {split}"
    return Finding(
        kind,
        [str(b.path), str(a.path)],
        f"{b.path} is {what} {a.path} ({where})",
        split,
        detail.pop("score", 1.0),
        detail,
    )


def _unit(embeddings: np.ndarray, rule: CosineRule) -> np.ndarray:
    """(N, D) float32 rows of length 1 (centred on their mean first where the rule says)."""
    e = embeddings.astype(np.float32)
    if rule.centred:
        e = e - e.mean(axis=0)
    return e / np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)


def _near_pairs(
    scans: Sequence[Scan], hashed: list[int], embeddings: np.ndarray | None, rule: CosineRule
) -> list[tuple[int, int, int, float | None]]:
    """(a, b, hash bits, cosine or None) of every near pair among the `hashed` scans."""
    bits = np.stack([np.concatenate([scans[i].phash, scans[i].dhash]) for i in hashed])
    packed = np.packbits(bits.astype(np.uint8), axis=1)  # (N, 16) bytes
    unit = None if embeddings is None else _unit(embeddings[hashed], rule)
    gate = 128 if unit is None or rule.within_bits is None else rule.within_bits
    nearest = np.full(len(hashed), 128)
    candidates: list[tuple[int, int, int, float | None]] = []  # (row, col, bits, cosine)
    for r in range(len(hashed) - 1):  # row by row: N x N bits would not fit for 100k images
        dist = np.unpackbits(packed[r] ^ packed[r + 1 :], axis=1).sum(axis=1)
        nearest[r] = min(nearest[r], int(dist.min()))
        nearest[r + 1 :] = np.minimum(nearest[r + 1 :], dist)
        close = dist <= NEAR_BITS
        cos = None
        if unit is not None:
            cos = unit[r + 1 :] @ unit[r]
            close |= (cos >= rule.cosine) & (dist <= gate)
        for c in np.nonzero(close)[0]:
            candidates.append(
                (r, r + 1 + int(c), int(dist[c]), None if cos is None else float(cos[c]))
            )
    limit = near_limit(nearest)
    return [
        (hashed[r], hashed[col], d, cosine)
        for r, col, d, cosine in candidates
        if d <= limit or (cosine is not None and cosine >= rule.cosine and d <= gate)
    ]


def find_duplicates(
    entries: Sequence[Entry],
    scans: Sequence[Scan],
    embeddings: np.ndarray | None = None,
    rule: CosineRule = RUN_RULE,
) -> list[Finding]:
    """Findings for exact and near duplicate pairs, leaks first, then by how close;
    `embeddings` (N, D), one row per scan, add the pairs `rule` calls near."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scans):
        if s.sha256:
            groups[s.sha256].append(i)
    out: list[Finding] = []
    exact: set[tuple[int, int]] = set()
    for members in groups.values():
        first = min(members, key=lambda i: (entries[i].split != "val", str(entries[i].path)))
        for other in members:
            if other != first:
                keep, drop = _order(first, other, entries)
                exact.add((min(keep, drop), max(keep, drop)))
                out.append(_finding("exact", keep, drop, entries))
    hashed = [i for i, s in enumerate(scans) if s.phash is not None and s.dhash is not None]
    for a, b, d, cosine in _near_pairs(scans, hashed, embeddings, rule) if len(hashed) > 1 else []:
        if (a, b) in exact:
            continue
        keep, drop = _order(a, b, entries)
        detail: dict[str, float] = {"hash_bits": d, "score": 1.0 - d / 128}
        if cosine is not None:
            detail["cosine"] = round(cosine, 4)
        out.append(_finding("near", keep, drop, entries, **detail))
    out.sort(key=lambda f: (not f.kind.startswith("leak"), not f.kind.endswith("exact"), -f.score))
    return out
