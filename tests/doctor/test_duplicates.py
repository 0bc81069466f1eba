"""Exact and near duplicates: every planted pair found, nothing else, leaks first; the limits."""

from __future__ import annotations

import numpy as np

from recog.data.inventory import Entry
from recog.doctor.duplicates import NEAR_BITS, find_duplicates, near_limit
from recog.doctor.facet import DOCTOR
from recog.doctor.scan import scan_file, scan_files
from recog.types import TaskName


def _inventory(root):
    return DOCTOR.of(TaskName.CLASSIFY).inventory(str(root), val_split=0.2, seed=0)


def test_every_planted_pair_is_found_and_nothing_else(planted_folders):
    inv = _inventory(planted_folders["root"])
    found = find_duplicates(inv.entries, scan_files([e.path for e in inv.entries]))
    got = {(f.kind, frozenset(f.files)) for f in found}
    want = {("leak-exact", frozenset(map(str, p))) for p in planted_folders["exact"]}
    want |= {("leak-near", frozenset(map(str, p))) for p in planted_folders["near"]}
    want.add(("duplicate-exact", frozenset(map(str, planted_folders["inside"]))))
    assert got == want
    # leaks first (exact before near), and a leak's copy to drop is the training one
    assert [f.kind for f in found] == ["leak-exact"] * 2 + ["leak-near"] * 2 + ["duplicate-exact"]
    assert all("/train/" in f.files[0] and "/val/" in f.files[1] for f in found[:4])
    assert all(f.split == "train/val" for f in found[:4])


def test_embeddings_add_a_pair_the_hashes_alone_miss(planted_folders):
    inv = _inventory(planted_folders["root"])
    scans = scan_files([e.path for e in inv.entries])
    i, j = 3, 4  # two different training scenes
    a, b = scans[i], scans[j]
    bits = int((np.concatenate([a.phash, a.dhash]) != np.concatenate([b.phash, b.dhash])).sum())
    if bits > 40:  # EMBED_BITS: not a pair the embedding may add
        b.phash, b.dhash = a.phash.copy(), a.dhash.copy()
        b.phash[:35] = ~b.phash[:35]
    emb = np.random.default_rng(0).normal(size=(len(scans), 8))
    emb[j] = emb[i] * 1.01
    plain = {frozenset(f.files) for f in find_duplicates(inv.entries, scans)}
    with_emb = {frozenset(f.files) for f in find_duplicates(inv.entries, scans, emb)}
    pair = frozenset({str(inv.entries[i].path), str(inv.entries[j].path)})
    assert pair not in plain and pair in with_emb


def test_a_set_of_look_alikes_needs_closer_pairs():
    # most images 10-20 bits from a neighbour (EM slices, digits): the limit drops with them
    assert near_limit(np.array([50, 52, 55, 54])) == NEAR_BITS
    assert near_limit(np.array([15, 18, 20, 16])) < 12


def test_an_unreadable_file_is_a_scan_with_its_problem(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    s1, s2 = scan_file(bad), scan_file(empty)
    assert s1.problem and s1.phash is None and s2.problem == "empty file (0 bytes)"
    entries = [Entry(bad, "train"), Entry(empty, "val")]
    assert find_duplicates(entries, [s1, s2]) == []  # no hash: not a pair
