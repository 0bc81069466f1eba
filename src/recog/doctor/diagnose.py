"""`recog data doctor PATH`: one pass over a dataset, every check, the page, and the cleaned copy.

The order: the task's inventory (`DoctorFacet.inventory`, `recog.doctor.facet`:
the files training would read, with their splits), one scan of every file
(`scan`: hashes, header facts, thumbnail), then the checks: duplicates and
leaks (`duplicates`), image facts (`images`), the annotations
(`DoctorFacet.annotation_findings`) and likely label errors
(`DoctorFacet.label_findings`, with the evidence of `evidence`: out-of-fold
probabilities, or the run's predictions).  The page and JSON go to `out`;
`fix` writes the cleaned copy (`DoctorFacet.write_fixed`) and `changes.json`,
the log of every change.  The dataset itself is only read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from recog.console import progress_bar
from recog.data.inventory import Finding, Inventory
from recog.doctor import evidence
from recog.doctor.duplicates import IMAGENET_RULE, RUN_RULE, find_duplicates
from recog.doctor.facet import DOCTOR, DoctorFacet
from recog.doctor.images import image_findings
from recog.doctor.metadata import metadata_leaks
from recog.doctor.page import effects, write_page
from recog.doctor.scan import scan_files
from recog.errors import RecogError
from recog.io import atomic_write_text

#: what `--fix` does with each kind of finding: drop the finding's first file (the copy,
#: the mislabelled image, the unreadable file), drop one box, or leave it for a person
FIX_DROPS_FILE = {
    "leak-exact", "leak-near", "duplicate-exact", "duplicate-near",
    "label-error", "unreadable", "mask-values", "mask-size",
}  # fmt: skip
FIX_DROPS_BOX = {"box-duplicate"}


@dataclass
class Diagnosis:
    result: dict[str, Any]
    findings: list[Finding]
    out: Path
    fixed: Path | None = None


def _check_out(out: Path, data: Path, name: str | None) -> None:
    """`out` may be new, empty or an earlier report of this command; never inside a dataset
    folder (a file dataset, a CSV or COCO JSON, only may not be `out` itself)."""
    root = data.resolve()
    target = out.resolve()
    if target == root or (data.is_dir() and root in target.parents):
        raise RecogError(f"{out}: lies inside the dataset {data}; the doctor never writes there")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if name is None:
            raise RecogError(f"{out}: exists and is not empty; the cleaned copy needs a new folder")
        if not (out / name).is_file():
            raise RecogError(f"{out}: exists and is not an earlier doctor report; choose another")


def _fix(
    task: DoctorFacet, inv: Inventory, findings: Sequence[Finding], fix: Path, trust_labels: bool
) -> dict[str, Any]:
    changes: list[dict[str, Any]] = []
    drop: set[str] = set()
    drop_boxes: dict[str, list[int]] = {}
    for f in findings:
        if f.kind == "label-error" and not trust_labels:
            changes.append({"action": "none", "file": f.files[0], "kind": f.kind,
                            "why": f.message + " (the label check's model is too weak to act on)"})  # fmt: skip
        elif f.kind in FIX_DROPS_FILE and f.files and f.files[0] not in drop:
            # a mask finding names the mask first; the image is what leaves the set
            target = f.files[1] if f.kind.startswith("mask-") and len(f.files) > 1 else f.files[0]
            target = next((str(e.path) for e in inv.entries if str(e.mask) == target), target)
            if target in drop:
                continue
            drop.add(target)
            changes.append(
                {"action": "drop-image", "file": target, "kind": f.kind, "why": f.message}
            )
        elif f.kind in FIX_DROPS_BOX:
            boxes = f.detail.get("boxes") or []
            entry = next((e for e in inv.entries if str(e.path) == f.files[0]), None)
            if entry is None or len(boxes) < 2 or entry.boxes is None:
                continue
            second = next(
                (k for k, b in enumerate(entry.boxes.tolist())
                 if [round(v, 1) for v in b] == boxes[1] and k not in drop_boxes.get(f.files[0], [])),
                None,
            )  # fmt: skip
            if second is not None:
                drop_boxes.setdefault(f.files[0], []).append(second)
                changes.append({"action": "drop-box", "file": f.files[0], "box": boxes[1],
                                "kind": f.kind, "why": f.message})  # fmt: skip
        else:
            changes.append({"action": "none", "file": f.files[0] if f.files else "",
                            "kind": f.kind, "why": f.message})  # fmt: skip
    for line in inv.warnings:  # what the readers already did to the annotations
        changes.append({"action": "reader", "why": line})
    kept = [e for e in inv.entries if str(e.path) not in drop]
    fix.mkdir(parents=True, exist_ok=True)
    written = task.write_fixed(inv, kept, fix, drop_boxes)
    log = {"source": str(inv.root), "copy": str(written), "kept_images": len(kept),
           "dropped_images": len(drop), "dropped_boxes": sum(map(len, drop_boxes.values())),
           "changes": changes}  # fmt: skip
    atomic_write_text(fix / "changes.json", json.dumps(log, indent=1))
    return {k: v for k, v in log.items() if k != "changes"}


@dataclass
class _LabelEvidence:
    """The two ways `DoctorFacet.label_findings` may ask a model, and what the asking found.

    `how` gathers what the label check's model was and how strong it is
    (`evidence.strength`): the page says it, and `--fix` acts on the check's
    suspects only when it is `trusted`."""

    clean_inv: Inventory
    embeddings: Any  # (n, d) the run's embeddings of every scanned file, or None
    readable: list[int]
    sides: list[int]  # the shorter side of each readable image
    seed: int
    fold_steps: int | None
    rec: Any  # the loaded run (a Recognizer), or None
    imagenet: tuple[Any, str] | None = None  # `_Scanned.imagenet`: computed once, shared
    how: dict[str, Any] = field(default_factory=dict)

    def cross_validated(self) -> Any:
        """Out-of-fold class probabilities of every readable image (`evidence`)."""
        probs = self._out_of_fold()
        self.how.update(evidence.strength(probs, [e.label for e in self.clean_inv.entries]))
        return probs

    def _out_of_fold(self) -> Any:
        labels = [e.label for e in self.clean_inv.entries]
        if self.embeddings is not None:
            self.how["how"] = f"{evidence.FOLDS}-fold logistic regression on the run's embeddings"
            return evidence.probe_out_of_fold(self.embeddings[self.readable], labels, self.seed)
        paths = [e.path for e in self.clean_inv.entries]
        with progress_bar() as bar:
            jobs: dict[str, Any] = {}

            def progress(what: str, done: int, total: int) -> None:
                if what not in jobs:
                    jobs[what] = bar.add_task(f"label check: {what}", total=total, info="")
                bar.update(jobs[what], completed=done)

            if self.fold_steps is None:  # --fold-steps asks for the fold models by name
                found = self.imagenet
                if found is not None:
                    self.how["how"] = f"{evidence.FOLDS}-fold logistic regression on {found[1]}"
                    return evidence.probe_out_of_fold(found[0], labels, self.seed)
            probs, how = evidence.trained_out_of_fold(
                paths, labels, len(self.clean_inv.class_names), self.sides,
                recipe=evidence.FoldRecipe(steps=self.fold_steps, seed=self.seed),
                progress=progress,
            )  # fmt: skip
        self.how.update(how)
        return probs

    def predict(self) -> Callable[[Sequence[Path]], list] | None:
        """The run's predictions of files (None without a run)."""
        if self.rec is None:
            return None
        recognizer = self.rec

        def predict(files: Sequence[Path]) -> list:
            # every candidate, low scores too: cleanlab's box check weighs them all
            return recognizer.predict(list(files), reject=False, keep_all=True)

        return predict


@dataclass
class _Scanned:
    """One read of every file (`scan`) and what models say of the readable ones, computed
    once: the run's embeddings (for the label probe) and the untouched ImageNet features
    (for the near duplicates and, without a run, the label probe)."""

    scans: list[Any]
    readable: list[int]
    run_embeddings: Any = None  # (n, d) over every scanned file, or None
    imagenet: tuple[Any, str] | None = None  # ((len(readable), 1280), what they are), or None

    def near_duplicates(self, entries: Sequence[Any], checks: list[str]) -> list[Finding]:
        """`find_duplicates` with the ImageNet features where there are some (they separate
        near copies better than a fine-tuned run's own: docs/doctor.md), else the run's."""
        if self.imagenet is not None:
            import numpy as np

            feats, what = self.imagenet
            full = np.zeros((len(self.scans), feats.shape[1]), dtype=feats.dtype)
            full[self.readable] = feats
            rule = IMAGENET_RULE
            checks.append(
                f"near duplicates also by {what}: cosine >= {rule.cosine} of the features "
                "centred on the set's mean"
                + (", not the run's embeddings (they separate near copies less)"
                   if self.run_embeddings is not None else "")
            )  # fmt: skip
            return find_duplicates(entries, self.scans, full, rule)
        if self.run_embeddings is not None:
            rule = RUN_RULE
            checks.append(
                f"near duplicates also by the run's embeddings ({self.run_embeddings.shape[1]} "
                f"dims): cosine >= {rule.cosine} with the hashes within {rule.within_bits} bits"
            )
        return find_duplicates(entries, self.scans, self.run_embeddings, RUN_RULE)


def _scan(paths: list[Path], rec: Any, checks: list[str]) -> _Scanned:
    """Scan every file once (`scan`), then the run's embeddings and the ImageNet features of
    the readable ones (`evidence`); `checks` hears what ran."""
    with progress_bar() as bar:
        job = bar.add_task("scanning", total=len(paths), info="")
        scans = scan_files(paths, progress=lambda n: bar.advance(job, n))
        readable = [i for i, s in enumerate(scans) if not s.problem]
        out = _Scanned(scans, readable)
        if readable:
            jobs: dict[str, Any] = {}

            def progress(what: str, done: int, total: int) -> None:
                if what not in jobs:
                    jobs[what] = bar.add_task(what, total=total, info="")
                bar.update(jobs[what], completed=done)

            sides = [min(scans[i].width, scans[i].height) for i in readable]
            out.imagenet = evidence.pretrained_features([paths[i] for i in readable], sides,
                                                        progress)  # fmt: skip
    checks.append(f"{len(paths)} images scanned (SHA-256, pHash + dHash)")
    if rec is not None and readable:
        feats = evidence.run_features(rec, [paths[i] for i in readable])
        if feats is not None:
            import numpy as np

            out.run_embeddings = np.zeros((len(paths), feats.shape[1]), dtype=feats.dtype)
            out.run_embeddings[readable] = feats
    return out


def _label_check_lines(how: str, label_how: dict[str, Any]) -> list[str]:
    """What the page says of the label check: how it ran, and whether --fix trusts it."""
    lines = [how + (f" ({label_how['how']})" if label_how.get("how") else "")]
    if "trusted" in label_how:
        lines.append(
            f"the label check's model agrees with {label_how['oof_accuracy']:.0%} of the given "
            f"labels (one class for all: {label_how['chance']:.0%}): "
            + ("strong enough for --fix to drop its suspects" if label_how["trusted"]
               else "too weak to act on; its suspects are listed for review, --fix keeps them")
        )  # fmt: skip
    return lines


def _result(
    data: str, task: str, inv: Inventory, findings: list[Finding], *, run: str | Path | None,
    checks: list[str], label_how: dict[str, Any], val_split: float, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """doctor.json's content (less `fix` and `seconds`, added after)."""
    counts = {s: sum(1 for e in inv.entries if e.split == s) for s in ("train", "val")}
    leaks = metadata_leaks(inv.entries, inv.class_names)
    if any(e.meta for e in inv.entries):
        checks.append("metadata columns: does a lookup learned on train name the val labels?")
    return {
        "data": str(data),
        "task": task,
        "format": str(inv.fmt),
        "classes": inv.class_names,
        "split": "given by the data"
        if inv.split_given
        else (inv.split_note or f"seeded (val {val_split}, seed {seed})"),
        "images": counts,
        "run": str(run) if run is not None else None,
        "checks": checks,
        "label_check": label_how,
        "counts": {
            k: sum(1 for f in findings if f.kind == k)
            for k in dict.fromkeys(f.kind for f in findings)
        },
        "effects": effects(findings, counts) + [m["effect"] for m in leaks],
        "metadata_leaks": leaks,
    }


def diagnose(
    data: str,
    *,
    run: str | Path | None = None,
    out: str | Path | None = None,
    fix: str | Path | None = None,
    classes: str | None = None,
    val_split: float = 0.2,
    seed: int = 0,
    fold_steps: int | None = None,
    group_by: str = "",
) -> Diagnosis:
    """Read `data` as training would, run every check, write the page to `out` (and the
    cleaned copy to `fix`)."""
    from recog.data.formats import infer_task

    start = time.perf_counter()
    path = Path(data)
    task_name = infer_task(data)
    doctor = DOCTOR.of(task_name)
    inv = doctor.inventory(data, val_split=val_split, seed=seed, classes=classes, group_by=group_by)
    out = Path(out) if out is not None else Path(f"doctor-{path.resolve().stem}")
    _check_out(out, path, "doctor.json")
    if fix is not None:
        _check_out(Path(fix), path, None)
    rec = None
    if run is not None:
        from recog.api import load

        rec = load(run)
        evidence.check_run_classes(rec, inv.class_names, str(task_name))
    paths = [e.path for e in inv.entries]
    checks: list[str] = []
    scanned = _scan(paths, rec, checks)
    scans, readable = scanned.scans, scanned.readable
    findings = scanned.near_duplicates(inv.entries, checks)
    findings += image_findings(inv.entries, scans)
    clean_inv = replace(inv, entries=[inv.entries[i] for i in readable])
    findings += doctor.annotation_findings(clean_inv)
    sides = [min(scans[i].width, scans[i].height) for i in readable]
    ask = _LabelEvidence(clean_inv, scanned.run_embeddings, readable, sides, seed=seed,
                         fold_steps=fold_steps, rec=rec, imagenet=scanned.imagenet)  # fmt: skip
    labels, how = doctor.label_findings(clean_inv, cross_validated=ask.cross_validated,
                                        predict=ask.predict())  # fmt: skip
    findings += labels
    checks += _label_check_lines(how, ask.how)
    result = _result(data, str(task_name), inv, findings, run=run, checks=checks,
                     label_how=ask.how, val_split=val_split, seed=seed)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    fixed = None
    if fix is not None:
        trusted = bool(ask.how.get("trusted", True))
        result["fix"] = _fix(doctor, inv, findings, Path(fix), trusted)
        fixed = Path(fix)
    result["seconds"] = round(time.perf_counter() - start, 1)
    thumbs = {str(s.path): (s.thumb, (s.width, s.height)) for s in scans}
    write_page(out, result, findings, thumbs)
    return Diagnosis(result, findings, out, fixed)
