"""`recog data export-feedback`: user corrections from the history store -> a training set.

What a task's corrections become is the task's serving facet's to say
(`recog.serve.facet.SERVE`): classification writes a class-folder root
(`OUT/<label>/<sha>.jpg`, trainable with `recog train --data OUT`, split by
`--val-split`), detection COCO (`OUT/annotations.json` + `OUT/images/`),
the others nothing (the summary says so).  Only predictions whose image
was kept (`recog serve --keep-images`) can be exported; the others are
counted and reported.  An image predicted several times counts once, with
its newest correction.  With feedback on several models and no `model`
given, each model gets its own folder `OUT/<model>/`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recog.errors import RecogError
from recog.serve.facet import SERVE
from recog.serve.store import Store
from recog.types import CorrectedExample, safe_file_name


def export_feedback(db_url: str, out: str | Path, *, model: str | None = None) -> dict[str, Any]:
    """Write the corrected examples under `out`; returns a summary per model."""
    out = Path(out)
    store = Store(db_url)
    try:
        by_model: dict[str, dict[str, CorrectedExample]] = {}
        for ex in store.corrected(model=model):
            by_model.setdefault(ex.model, {})[ex.image_sha256] = ex  # newest wins
    finally:
        store.close()
    if not by_model:
        raise RecogError(
            f"history store {store.shown}: no corrected predictions"  # its password hidden
            + (f" for model {model!r}" if model else "")
        )
    summary: dict[str, Any] = {}
    for name, examples in by_model.items():
        folder = out if len(by_model) == 1 else out / safe_file_name(name)
        summary[name] = _export_model(list(examples.values()), folder)
    return summary


def _export_model(examples: list[CorrectedExample], folder: Path) -> dict[str, Any]:
    task = examples[0].task
    kept = [ex for ex in examples if ex.image is not None]
    info: dict[str, Any] = {
        "task": task,
        "path": str(folder),
        "corrections": len(examples),
        "without_image": len(examples) - len(kept),
    }
    try:
        serving = SERVE.of(task)
    except (RecogError, ValueError):  # declined (segment), or a task this recog does not know
        info.update(format=None, images=0, note=f"corrections of {task} models are not exported")
    else:
        info.update(serving.export(kept, folder))
    return info
