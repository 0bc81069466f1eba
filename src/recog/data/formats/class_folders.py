"""Classification sources: class folders, CSV lists and the built-in digits, as `Listing`s.

Layouts: `root/train/<class>/*` with `root/val/<class>/*` (or `test/`);
`root/<class>/*` split per class by `val_split` with a fixed seed; a CSV of
`path,label` (header optional; paths relative to the CSV, inside its folder:
one leading out is an error; symbolic links inside are followed, `recog.data.images.confine`);
a header naming `path` and `label` among other columns makes those columns each
image's metadata (`--group-by`, the doctor's leak check); `digits`,
scikit-learn's 1,797 handwritten digits (shipped inside scikit-learn).
Non-image files are ignored; hidden files too.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from recog.data.formats import TASK_FORMATS, DataFormat, detect_format
from recog.data.formats.digits import digits_images
from recog.data.groups import GroupRule, grouped_split
from recog.data.images import confine, is_image_file, walk_files
from recog.data.splits import seeded_split
from recog.errors import RecogError
from recog.types import TaskName

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Listing:
    """Image items with label indices; items are paths or in-memory uint8 tensors."""

    items: list
    labels: list[int]
    ignored: int = 0  # non-image files seen
    names: list[str] | None = None  # what `Sample.path` shows; None: str(item)
    #: how the split that made this listing was drawn, when it says more than the fraction
    #: (a grouped split: groups per side, classes val cannot measure); "" otherwise
    note: str = ""
    #: each item's row of the data's metadata table (a CSV with path,label,... columns)
    meta: list[dict[str, str]] | None = None

    def name(self, index: int) -> str:
        return self.names[index] if self.names is not None else str(self.items[index])


def _scan(root: Path) -> tuple[dict[str, list[Path]], int]:
    classes: dict[str, list[Path]] = {}
    ignored = 0
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = walk_files(folder)
        images = [confine(p, root, where=str(folder)) for p in files if is_image_file(p)]
        ignored += len(files) - len(images)
        classes[folder.name] = images
    return classes, ignored


def _listing(classes: dict[str, list[Path]], names: list[str], ignored: int) -> Listing:
    index = {n: i for i, n in enumerate(names)}
    items, labels = [], []
    for name, files in classes.items():
        items += files
        labels += [index[name]] * len(files)
    return Listing(items, labels, ignored)


def _subset(listing: Listing, indices: list[int]) -> Listing:
    return Listing(
        [listing.items[i] for i in indices],
        [listing.labels[i] for i in indices],
        listing.ignored,
        None if listing.names is None else [listing.names[i] for i in indices],
        meta=None if listing.meta is None else [listing.meta[i] for i in indices],
    )


def _check_classes(names: list[str], where: str) -> None:
    if not names:
        raise RecogError(f"{where}: no class folders with images found")
    if len(names) < 2:
        raise RecogError(f"{where}: needs at least 2 classes, found only {names[0]!r}")


def read_csv(path: Path) -> tuple[list[Path], list[str], list[dict[str, str]] | None]:
    """(files, labels, metadata rows) of a CSV list: `path,label` rows (header optional), or a
    header naming `path` and `label` among other columns, which become each row's metadata
    (for `--group-by` and the doctor's leak check)."""
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecogError(f"{path}: cannot read CSV ({exc})") from exc
    header = [c.strip() for c in rows[0]] if rows else []
    lower = [c.lower() for c in header]
    wide = "path" in lower and "label" in lower and len(header) > 2
    at_path, at_label = (lower.index("path"), lower.index("label")) if wide else (0, 1)
    if wide and len(set(lower)) != len(lower):
        raise RecogError(f"{path}, line 1: a column name appears twice ({','.join(header)})")
    items, labels, metadata = [], [], []
    for n, row in enumerate(rows, start=1):
        if not row or (n == 1 and (wide or lower == ["path", "label"])):
            continue
        width = len(header) if wide else 2
        if len(row) != width or not row[at_path].strip() or not row[at_label].strip():
            expected = ",".join(header) if wide else "path,label"
            raise RecogError(f"{path}, line {n}: expected {expected!r}, got {','.join(row)!r}")
        file = Path(row[at_path].strip())
        file = file if file.is_absolute() else path.parent / file
        items.append(confine(file, path.parent, where=f"{path}, line {n}"))
        labels.append(row[at_label].strip())
        if wide:
            metadata.append({h: v.strip() for h, v in zip(header, row, strict=True)})
    return items, labels, (metadata if wide else None)


def _split(
    full: Listing, metadata: list[dict[str, str]] | None, names: list[str], *,
    val_split: float, seed: int, group_by: str, where: str,
) -> tuple[Listing, Listing]:  # fmt: skip
    """The seeded per-class split, or with `group_by` the grouped one (`recog.data.groups`)."""
    if not group_by:
        tr, va = seeded_split(len(full.labels), val_split, seed, labels=full.labels)
        return _subset(full, tr), _subset(full, va)
    rule = GroupRule.parse(group_by)
    shown = [full.name(i) for i in range(len(full.items))]
    groups = rule.groups(shown, metadata, where)
    split = grouped_split(groups, full.labels, names, val_split=val_split, seed=seed,
                          rule=group_by)  # fmt: skip
    train = _subset(full, split.train)
    train.note = split.note
    return train, _subset(full, split.val)


def list_splits(
    spec: str, *, val_split: float, seed: int, group_by: str = ""
) -> tuple[Listing, Listing, list[str], str]:
    """(train, val, class names, short name) for any classification source.

    Class folders and CSV lists without their own val/ (or test/) split are
    split per class (`seeded_split` with labels), or with `group_by` keeping
    each group whole (`recog.data.groups`; the train listing's `note` says how).
    """
    fmt = detect_format(spec, among=TASK_FORMATS[TaskName.CLASSIFY])
    if fmt is DataFormat.DIGITS:
        if group_by:
            raise RecogError(f"--group-by: {spec} has no sessions to group by")
        images, labels = digits_images()
        full = Listing(list(images), labels, names=[f"digits[{i}]" for i in range(len(labels))])
        tr, va = seeded_split(len(labels), val_split, seed, labels=labels)
        return _subset(full, tr), _subset(full, va), [str(i) for i in range(10)], "digits"
    path = Path(spec)
    if not path.exists():
        raise RecogError(
            f"{spec}: no such file or directory (expected a class-folder root, a CSV, or 'digits')"
        )
    if fmt is None:
        raise RecogError(f"{spec}: not a CSV list or a directory of class folders")
    if fmt is DataFormat.CLASS_CSV:
        files, names, metadata = read_csv(path)
        classes = sorted(set(names))
        _check_classes(classes, spec)
        full = Listing(files, [classes.index(n) for n in names], meta=metadata)
        train, val = _split(full, metadata, classes, val_split=val_split, seed=seed,
                            group_by=group_by, where=spec)  # fmt: skip
        return train, val, classes, path.stem
    splits = {s: path / s for s in SPLIT_NAMES if (path / s).is_dir()}
    if "train" in splits:
        train_classes, ignored = _scan(splits["train"])
        names = sorted(n for n, f in train_classes.items() if f)
        _check_classes(names, str(splits["train"]))
        val_dir = splits.get("val") or splits.get("test")
        if val_dir is None:
            full = _listing({n: train_classes[n] for n in names}, names, ignored)
            train, val = _split(full, None, names, val_split=val_split, seed=seed,
                                group_by=group_by, where=spec)  # fmt: skip
            return train, val, names, path.name
        if group_by:
            raise RecogError(
                f"--group-by: {val_dir} is the dataset's own validation split; "
                "group the images when you make it, or remove it to split here"
            )
        val_classes, ignored_val = _scan(val_dir)
        unknown = [n for n, f in val_classes.items() if f and n not in names]
        if unknown:
            raise RecogError(
                f"{val_dir / unknown[0]}: class {unknown[0]!r} is not in {splits['train']}"
            )
        return (
            _listing({n: train_classes[n] for n in names}, names, ignored),
            _listing({n: f for n, f in val_classes.items() if f}, names, ignored_val),
            names,
            path.name,
        )
    classes, ignored = _scan(path)
    names = sorted(n for n, f in classes.items() if f)
    _check_classes(names, spec)
    full = _listing({n: classes[n] for n in names}, names, ignored)
    train, val = _split(full, None, names, val_split=val_split, seed=seed, group_by=group_by,
                        where=spec)  # fmt: skip
    return train, val, names, path.name


def list_eval(spec: str, *, class_names: list[str]) -> Listing:
    """Everything to evaluate on: the val/ (or test/) split if present, else all images."""
    fmt = detect_format(spec, among=TASK_FORMATS[TaskName.CLASSIFY])
    if fmt is DataFormat.DIGITS:
        _, val, _, _ = list_splits("digits", val_split=0.2, seed=0)
        return val
    path = Path(spec)
    if not path.exists():
        raise RecogError(f"{spec}: no such file or directory")
    if fmt is not DataFormat.CLASS_FOLDERS:  # a file: read as a CSV whatever its suffix
        files, names, _ = read_csv(path)
        bad = [n for n in names if n not in class_names]
        if bad:
            raise RecogError(f"{spec}: class {bad[0]!r} is not one of the run's classes")
        return Listing(files, [class_names.index(n) for n in names])
    root = next((path / s for s in ("val", "test") if (path / s).is_dir()), path)
    classes, ignored = _scan(root)
    classes = {n: f for n, f in classes.items() if f}
    unknown = [n for n in classes if n not in class_names]
    if unknown:
        raise RecogError(
            f"{root / unknown[0]}: class {unknown[0]!r} is not one of the run's classes ({', '.join(class_names)})"
        )
    if not classes:
        raise RecogError(f"{root}: no class folders with images found")
    return _listing(classes, class_names, ignored)
