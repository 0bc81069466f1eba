"""Grouped splits (`--group-by`): every image of one session on the same side of the split.

Frames of one video, photos of one specimen, crops of one hive visit are
near copies that share a label: a random split puts the same subject in train
and val, and the validation number measures recall of that subject, not the
task (`../shared/data/bees`: 19 hive sessions, 5,172 crops).  scikit-learn's
`GroupShuffleSplit` is where the idea lives; it is not used here because the
split must also keep recog's rules (the fixed seed of `seeded_split`, a
fraction of images rather than of groups, and a report of the classes that
cannot reach val), which is a dozen lines over the group sizes.

A group is named by
- columns of the data's metadata table (`--group-by date,location`: a CSV
  with a `path,label,...` header), or
- a regular expression over the file name whose first group names it
  (`--group-by '^(\\d+)_'`: `041_066.png` -> `041`).
A value the user gave is used or refused: a column that is not in the table,
a pattern that does not compile or has no group, or a file the pattern does
not match is one line naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from recog.errors import RecogError


@dataclass(frozen=True)
class GroupRule:
    """How a `--group-by` value names each image's group."""

    text: str
    columns: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, text: str) -> GroupRule:
        """A pattern when `text` holds a parenthesised group, else comma-separated columns."""
        text = text.strip()
        if not text:
            raise RecogError("--group-by: empty (name metadata columns, or a pattern with a (group))")
        if "(" in text:
            try:
                pattern = re.compile(text)
            except re.error as exc:
                raise RecogError(f"--group-by {text!r}: not a regular expression ({exc})") from None
            if pattern.groups < 1:
                raise RecogError(f"--group-by {text!r}: the pattern needs a (group) naming the session")
            return cls(text, pattern=pattern)
        columns = tuple(c.strip() for c in text.split(",") if c.strip())
        return cls(text, columns=columns)

    def groups(
        self, names: Sequence[str], metadata: Sequence[dict[str, str]] | None, where: str
    ) -> list[str]:
        """The group of each item (`names`: file names or paths; `metadata`: its table row)."""
        if self.pattern is not None:
            out = []
            for name in names:
                base = name.replace("\\", "/").rsplit("/", 1)[-1]
                match = self.pattern.search(base)
                if match is None or match.group(1) is None:
                    raise RecogError(
                        f"{name}: --group-by {self.text!r} does not match its file name "
                        "(every image needs a group)"
                    )
                out.append(match.group(1))
            return out
        if metadata is None:
            raise RecogError(
                f"{where}: --group-by {self.text!r} names columns, but this data has no metadata "
                "table (a CSV with a path,label,... header); or give a pattern such as '^(\\d+)_'"
            )
        known = sorted(metadata[0]) if metadata else []
        missing = [c for c in self.columns if c not in known]
        if missing:
            raise RecogError(
                f"{where}: --group-by column {missing[0]!r} is not in its table "
                f"(columns: {', '.join(known)})"
            )
        return ["|".join(row[c] for c in self.columns) for row in metadata]


@dataclass(frozen=True)
class GroupedSplit:
    train: list[int]
    val: list[int]
    note: str


def grouped_split(
    groups: Sequence[str], labels: Sequence[int] | None, class_names: Sequence[str], *,
    val_split: float, seed: int, rule: str,
) -> GroupedSplit:  # fmt: skip
    """(train, val) indices with every group whole on one side, and what that gave.

    Groups are taken in one seeded permutation: first one group of each class
    (rarest first) that has more than one, then whole groups while the val
    images stay under `round(n * val_split)` (a group that would overshoot by
    more than half its size goes to train), so val holds about the fraction of
    images asked for, not of groups, and every class it can measure.  With `labels` (one class per image):
    classes whose images all lie in one
    group can only be in train or only in val: they are kept in train (the model
    needs them) and the note names them, since val cannot measure them.
    """
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups):
        members.setdefault(group, []).append(i)
    names = sorted(members)
    if len(names) < 2:
        raise RecogError(
            f"--group-by {rule}: all {len(groups)} images are in one group; nothing to split by"
        )
    classes_of = {g: {labels[i] for i in members[g]} if labels else set() for g in names}
    groups_per_class: dict[int, int] = {}
    for g in names:
        for c in classes_of[g]:
            groups_per_class[c] = groups_per_class.get(c, 0) + 1
    single = {c for c, count in groups_per_class.items() if count == 1}
    target = max(1, round(len(groups) * val_split))
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    movable = [names[k] for k in order if not classes_of[names[k]] & single]
    in_train = dict(groups_per_class)  # groups of each class still in train
    val_groups: list[str] = []

    def move(g: str) -> bool:
        """Send `g` to val unless that takes the last group of one of its classes from train."""
        if g in val_groups or any(in_train[c] < 2 for c in classes_of[g]):
            return False
        val_groups.append(g)
        for c in classes_of[g]:
            in_train[c] -= 1
        return True

    # first, one group of each class that has two or more (rarest classes first), so val
    # measures every class it can; then whole groups in the seeded order up to the fraction
    for c in sorted(groups_per_class, key=lambda c: (groups_per_class[c], c)):
        if c not in single and not any(c in classes_of[g] for g in val_groups):
            next((g for g in movable if c in classes_of[g] and move(g)), None)
    size = sum(len(members[g]) for g in val_groups)
    for g in movable:
        if size + len(members[g]) / 2 <= target and move(g):
            size += len(members[g])
    if not val_groups:
        raise RecogError(
            f"--group-by {rule}: no group can go to val without taking a class out of train "
            f"({len(names)} groups)"
        )
    in_val = set(val_groups)
    train = sorted(i for g in names if g not in in_val for i in members[g])
    val = sorted(i for g in val_groups for i in members[g])
    missing = sorted(set(class_names) - {class_names[labels[i]] for i in val}) if labels else []
    note = (
        f"grouped by {rule}: {len(names) - len(val_groups)} groups / {len(train):,} images in "
        f"train, {len(val_groups)} groups / {len(val):,} images in val "
        f"({len(val) / max(1, len(groups)):.0%})"
    )
    if missing:
        alone = all(class_names.index(m) in single for m in missing)
        note += f"; not in val, so not measured: {', '.join(missing)}"
        note += " (each lives in one group)" if alone else ""
    return GroupedSplit(train, val, note)
