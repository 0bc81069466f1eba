"""Leaks through the metadata table: columns whose value alone names the label across the split.

When a dataset comes with a table (a CSV of `path,label,date,location,...`),
a column that names the session names the label too wherever one session
holds one class (the bees set: every hive visit is one subspecies).  With a
random split the same sessions sit in train and val, and a model can score by
recognising the session (the light, the background, the camera) rather than
the subject.  The measure here needs no model: a lookup table learned on the
training images (each value of the column -> its most common label) is
applied to the validation images; its accuracy is what the column alone
"predicts", against the accuracy of always answering val's commonest class.
A grouped split by that column gives the lookup nothing to look up (no val
value was seen in train), and the finding disappears.

Reported per column: values, share of val images whose value occurs in train,
the lookup's val accuracy, chance, and the sentence the page and the CLI show.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from recog.data.inventory import Entry

#: a column is reported when its lookup names at least this share of val labels ...
MIN_ACCURACY = 0.5
#: ... and beats always answering val's commonest class by at least this much
MIN_GAIN = 0.15


def metadata_leaks(entries: Sequence[Entry], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One record per metadata column whose train lookup names val labels far above chance."""
    train = [e for e in entries if e.split == "train" and e.meta is not None and e.label is not None]
    val = [e for e in entries if e.split == "val" and e.meta is not None and e.label is not None]
    if not train or not val:
        return []
    columns = [c for c in train[0].meta or {} if c.lower() not in ("path", "label")]
    chance = Counter(e.label for e in val).most_common(1)[0][1] / len(val)
    found = []
    for column in columns:
        by_value: dict[str, Counter] = defaultdict(Counter)
        for e in train:
            by_value[e.meta[column]][e.label] += 1  # type: ignore[index]
        lookup = {value: counts.most_common(1)[0][0] for value, counts in by_value.items()}
        seen = [e for e in val if e.meta[column] in lookup]  # type: ignore[index]
        right = sum(1 for e in seen if lookup[e.meta[column]] == e.label)  # type: ignore[index]
        accuracy = right / len(val)
        if accuracy < MIN_ACCURACY or accuracy < chance + MIN_GAIN:
            continue
        found.append(
            {
                "column": column,
                "values": len(by_value),
                "val_seen": round(len(seen) / len(val), 4),
                "lookup_accuracy": round(accuracy, 4),
                "chance": round(chance, 4),
                "effect": (
                    f"column {column!r} alone names {accuracy:.0%} of val labels (a lookup "
                    f"learned on train; always the commonest class: {chance:.0%}): a model can "
                    f"learn the {column} instead of the {_thing(class_names)}; split with "
                    f"--group-by {column}"
                ),
            }
        )
    return sorted(found, key=lambda f: -f["lookup_accuracy"])


def _thing(class_names: Sequence[str]) -> str:
    return "class" if len(class_names) > 2 else "label"
