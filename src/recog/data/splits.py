"""Train/val splits: the one seeded split every source uses, and the `DataSplits` loaders return.

A split is a pure function of (item count or labels, fraction, seed): the same
data, `val_split` and `seed` give the same split on every machine, so
`recog train`, `recog data split` and the recipe's survey see the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import torch
from torch.utils.data import Dataset

from recog.config import TrainRequest
from recog.data.groups import GroupRule, grouped_split
from recog.errors import RecogError
from recog.types import TaskName


@dataclass
class DataSplits:
    """What every task's loader returns: the two datasets and what describes them."""

    train: Dataset
    val: Dataset
    class_names: list[str]
    name: str
    task: TaskName
    #: class index per training item (classification: for the balanced sampler); else empty
    train_labels: list[int] = field(default_factory=list)
    #: (path, reason) of the images left out as unreadable
    skipped: list[tuple[str, str]] = field(default_factory=list)


def seeded_split(
    n: int, val_split: float, seed: int, *, labels: Sequence[int] | None = None
) -> tuple[list[int], list[int]]:
    """(train, val) indices of `n` items, each list sorted.

    Without `labels`: one permutation of all `n` from `seed`; `round(n * val_split)`
    items, at least one, go to validation.  With `labels` (one per item), the
    split is stratified: each class, in ascending label order, draws its own
    permutation from the same seeded generator and sends `round(count *
    val_split)` of its items to validation, none of a class with one item (so
    every class is seen in training).
    """
    check_split_settings(val_split, seed)
    gen = torch.Generator().manual_seed(seed)
    if labels is None:
        groups = [list(range(n))]
    else:
        by_class: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            by_class.setdefault(label, []).append(i)
        groups = [by_class[label] for label in sorted(by_class)]
    train: list[int] = []
    val: list[int] = []
    for idx in groups:
        perm = torch.randperm(len(idx), generator=gen).tolist()
        if labels is None:
            n_val = max(1, round(len(idx) * val_split))
        else:
            n_val = round(len(idx) * val_split) if len(idx) > 1 else 0
        val += [idx[p] for p in perm[:n_val]]
        train += [idx[p] for p in perm[n_val:]]
    return sorted(train), sorted(val)


def check_split_settings(val_split: float, seed: int) -> None:
    """`--val-split` and `--seed` within the limits `recog train` holds them to (their declarations in `recog.config`):
    a fraction strictly between 0 and 1 (2 once gave val = train), a seed numpy takes."""
    for flag, key, value in (("--val-split", "val_split", val_split), ("--seed", "seed", seed)):
        TrainRequest.from_dict({key: value}, source=flag)


class _HasSplit(Protocol):
    split: str


R = TypeVar("R", bound=_HasSplit)


def split_records(
    records: list[R], *, val_split: float, seed: int, spec: str = "", group_by: str = "",
    notes: list[str] | None = None,
) -> tuple[list[R], list[R]]:  # fmt: skip
    """(train, val) annotated images: the source's own split when it has both, else `seeded_split`,
    or with `group_by` (a file-name pattern) each group whole on one side, its note added to
    `notes`.

    records: anything with a `split` attribute ("train", "val", "test" or "") and a `path`.
    """
    if len(records) < 2:
        raise RecogError(f"{spec}: needs at least 2 annotated images, found {len(records)}")
    given_train = [r for r in records if r.split == "train"]
    given_val = [r for r in records if r.split == "val"]
    if given_train and given_val:
        if group_by:
            raise RecogError(
                f"--group-by: {spec} has its own train and val split; group the images when "
                "you make it, or remove it to split here"
            )
        return given_train, given_val
    if group_by:
        rule = GroupRule.parse(group_by)
        groups = rule.groups([str(getattr(r, "path", "")) for r in records], None, spec)
        split = grouped_split(groups, None, (), val_split=val_split, seed=seed, rule=group_by)
        if notes is not None:
            notes.append(split.note)
        return [records[i] for i in split.train], [records[i] for i in split.val]
    train, val = seeded_split(len(records), val_split, seed)
    return [records[i] for i in train], [records[i] for i in val]
