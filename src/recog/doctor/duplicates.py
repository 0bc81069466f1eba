"""Exact and near duplicates among a dataset's images, leaks across train/val first.

Exact: the same SHA-256 of the file's bytes.  Near: pHash and dHash (64 bits
each, imagehash) differing in at most `NEAR_BITS` of their 128 bits together
and in at most `NEAR_FRACTION` of the median distance between an image and its
nearest neighbour (in a set of look-alike images, EM slices or upscaled digits,
every image lies within 28 bits of another: there the pair must be much closer
than the set's usual neighbours), or, when a model gives embeddings, a cosine similarity of at least
`NEAR_COSINE` with the hashes within `EMBED_BITS` (the embedding alone would
pair two photos of one kind of scene).  The thresholds are measured
(docs/doctor.md): on hymenoptera with planted copies resized to 50-80 %,
re-encoded at JPEG quality 60-85 and cropped by 2-6 % a side, the planted
pairs differed by 9-22 bits, while the closest of the 86,700 other pairs
differed by 35; the median nearest-neighbour distance was 43 bits there, 44 on
raccoon, 26 on membrane and 18 on 32-px digits.  A group of more than two identical files is reported as
pairs with its first file, so each finding is one pair the page can show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from recog.data.inventory import Entry, Finding
from recog.doctor.scan import Scan

NEAR_BITS = 28
NEAR_FRACTION = 0.6
NEAR_COSINE = 0.97
EMBED_BITS = 40


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


def find_duplicates(
    entries: Sequence[Entry], scans: Sequence[Scan], embeddings: np.ndarray | None = None
) -> list[Finding]:
    """Findings for exact and near duplicate pairs, leaks first, then by how close."""
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
    if len(hashed) > 1:
        bits = np.stack([np.concatenate([scans[i].phash, scans[i].dhash]) for i in hashed])
        packed = np.packbits(bits.astype(np.uint8), axis=1)  # (N, 16) bytes
        cos = None
        if embeddings is not None:
            e = embeddings[hashed].astype(np.float64)
            e /= np.linalg.norm(e, axis=1, keepdims=True).clip(1e-12)
            cos = e @ e.T
        nearest = np.full(len(hashed), 128)
        candidates: list[tuple[int, int, int, float | None]] = []  # (row, col, bits, cosine)
        widest = max(NEAR_BITS, EMBED_BITS if cos is not None else 0)
        for r in range(len(hashed) - 1):  # row by row: N x N bits would not fit for 100k images
            dist = np.unpackbits(packed[r] ^ packed[r + 1 :], axis=1).sum(axis=1)
            nearest[r] = min(nearest[r], int(dist.min()))
            nearest[r + 1 :] = np.minimum(nearest[r + 1 :], dist)
            for c in np.nonzero(dist <= widest)[0]:
                col = r + 1 + int(c)
                candidates.append(
                    (r, col, int(dist[c]), None if cos is None else float(cos[r, col]))
                )
        limit = near_limit(nearest)
        for r, col, d, cosine in candidates:
            a, b = hashed[r], hashed[col]
            close = d <= limit or (cosine is not None and cosine >= NEAR_COSINE and d <= EMBED_BITS)
            if not close or (a, b) in exact:
                continue
            keep, drop = _order(a, b, entries)
            detail: dict[str, float] = {"hash_bits": d, "score": 1.0 - d / 128}
            if cosine is not None:
                detail["cosine"] = round(cosine, 4)
            out.append(_finding("near", keep, drop, entries, **detail))
    out.sort(key=lambda f: (not f.kind.startswith("leak"), not f.kind.endswith("exact"), -f.score))
    return out
