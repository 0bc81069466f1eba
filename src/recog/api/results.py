"""What a user does with predictions: draw them, save them, and hand them to other tools.

`Result` is the `Prediction` that `Recognizer.predict` returns: the same record
(`recog.types`, which stays free of PIL, pandas and supervision), with the
task that made it, so it can draw itself (`plot`, `save`) and convert itself
(`to_supervision`).  `to_df` and `to_coco` take a list of them.  Drawing is
the task's (`Task.draw`: per-class colours, labels sized to the image); pandas
and supervision are imported only when asked for.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from recog.errors import RecogError
from recog.types import Prediction

if TYPE_CHECKING:
    import pandas as pd
    import supervision as sv

    from recog.tasks import Task

#: the error of an image whose answer holds NaN or inf (a diverged model's): never a score
NON_FINITE = "model produced non-finite scores"


def all_finite(value: Any) -> bool:
    """Whether every number in `value` is finite: a prediction's tensors, or a record as JSON
    holds it (dicts, lists, floats)."""
    if isinstance(value, Prediction):
        value = [getattr(value, f.name) for f in fields(Prediction)]
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return all(map(all_finite, value))
    return True


def refuse_non_finite(predictions: Sequence[Prediction]) -> None:
    """A RecogError naming the first image whose answer is not finite (`NON_FINITE`)."""
    for i, pred in enumerate(predictions):
        if not all_finite(pred):
            raise RecogError(f"{pred.path or f'image {i + 1}'}: {NON_FINITE}")


@dataclass
class Result(Prediction):
    """A `Prediction` that knows its task: `.plot()`, `.save(path)`, `.to_supervision()`.

    `source` is the in-memory image it was made from (None for a file: `path`
    names it, and `plot` reads it again rather than keeping every image alive).
    """

    task: Task | None = field(default=None, repr=False, compare=False)
    source: Any = field(default=None, repr=False, compare=False)

    def _task(self) -> Task:
        if self.task is None:
            raise RecogError("this prediction has no task: use the one Recognizer.predict returns")
        return self.task

    def image(self) -> torch.Tensor:
        """The (3, H, W) uint8 image predicted (read again from `path`)."""
        from recog.api.images import _to_tensor

        if self.source is not None:
            return _to_tensor(self.source)
        if self.path is None:
            raise RecogError("this prediction has neither a path nor its image: pass image=")
        return _to_tensor(self.path)

    def plot(self, image: Any = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB: the image (`image`, else the one predicted) with the
        prediction drawn as `recog predict --save-dir` draws it."""
        from recog.api.images import _to_tensor

        pixels = self.image() if image is None else _to_tensor(image)
        return self._task().draw(pixels, self).permute(1, 2, 0).numpy()

    def save(self, path: str | Path, image: Any = None) -> Path:
        """Write `plot()` to `path` (the format from its suffix: .png, .jpg, ...)."""
        from PIL import Image

        from recog.io import atomic_write_bytes

        path = Path(path)
        fmt = Image.registered_extensions().get(path.suffix.lower())
        if fmt is None:
            raise RecogError(f"{path}: not an image file name (.png, .jpg, ...)")
        buf = io.BytesIO()
        Image.fromarray(self.plot(image)).save(buf, format=fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        return path

    def to_supervision(self) -> sv.Detections:
        """supervision's `Detections`: `xyxy`, `confidence`, `class_id`, `mask` (instances:
        one per box; semantic segmentation: one per class present, boxed by its extent)
        and `data["class_name"]`.  A classifier's answer has no boxes: refused."""
        import supervision as sv

        names = self.class_names or self._task().class_names
        if self.boxes is not None:
            xyxy = self.boxes.float().numpy().reshape(-1, 4)
            class_id = self.labels.long().numpy().reshape(-1)
            confidence = None if self.scores is None else self.scores.float().numpy()
            mask = None if self.masks is None else self.masks.bool().numpy()
        elif self.mask is not None:
            present = [int(k) for k in self.mask.unique() if int(k) < len(names)]
            mask = np.stack([(self.mask == k).numpy() for k in present]).reshape(
                -1, *self.mask.shape
            )
            xyxy = sv.mask_to_xyxy(mask).astype(np.float32)
            class_id, confidence = np.array(present, dtype=np.int64), None
        else:
            raise RecogError("a classification has no boxes or masks for supervision's Detections")
        return sv.Detections(
            xyxy=xyxy, mask=mask, confidence=confidence, class_id=class_id,
            data={"class_name": np.array([names[int(c)] for c in class_id], dtype=str)},
        )  # fmt: skip


def to_df(predictions: Sequence[Result]) -> pd.DataFrame:
    """A pandas DataFrame with the columns of `recog predict --format csv`, for every task:

    - classification: one row per image: `path`, `label`, `score` (of the answer),
      `top_k` ("name:prob;..." above `conf`), and `unknown`, `ood_score` where the run
      has an out-of-distribution rule;
    - detection and instance segmentation: one row per box: `path`, `label`, `score`,
      `x1`, `y1`, `x2`, `y2` (pixels of the image); an image with none has one row
      with only its `path`;
    - semantic segmentation: one row per image: `path`, `width`, `height`, and one
      `fraction_<class>` column per class (its fraction of the pixels).
    """
    import pandas as pd

    from recog.api.facet import OUTPUT

    refuse_non_finite(predictions)
    rows: list[dict[str, Any]] = []
    for pred in predictions:
        task = pred._task() if isinstance(pred, Result) else None
        if task is None:
            raise RecogError("to_df takes the predictions Recognizer.predict returns")
        rows += OUTPUT.of(task).csv_rows({"path": pred.path, **task.to_record(pred)})
    return pd.DataFrame(rows)


def to_coco(
    predictions: Sequence[Prediction],
    image_ids: Sequence[int] | Mapping[str, int] | None = None,
    category_ids: Sequence[int] | Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """COCO results (what `COCO.loadRes` and the COCO evaluators read): one
    `{"image_id", "category_id", "bbox": [x, y, w, h], "score"}` per box, with a
    `segmentation` (RLE) per instance mask.

    By default category ids are class index + 1 and image ids count from 1 in list
    order, as `recog data convert --to coco` writes a ground truth.  `image_ids`
    gives other image ids: one per prediction, or a mapping from each prediction's
    `path` (or, failing that, the longest trailing part of it the mapping names, as a
    COCO file names its images relative to their folder).  `category_ids` gives other category
    ids: one per class index, or a mapping from class name.  `coco_ids(gt_json)`
    reads both mappings from an existing COCO ground truth.
    """
    from recog.metrics.segmentation import encode_rle

    refuse_non_finite(predictions)
    out: list[dict[str, Any]] = []
    for i, pred in enumerate(predictions):
        if pred.boxes is None or pred.scores is None:
            raise RecogError("COCO results are boxes: only detection and instance predictions")
        image_id = _image_id(pred, i, image_ids)
        rles = encode_rle(pred.masks) if pred.masks is not None else [None] * len(pred.boxes)
        for box, c, s, rle in zip(
            pred.boxes.tolist(), pred.labels.tolist(), pred.scores.tolist(), rles, strict=True
        ):
            x1, y1, x2, y2 = box
            item = {
                "image_id": image_id,
                "category_id": _category_id(pred, int(c), category_ids),
                "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                "score": round(float(s), 6),
            }
            if rle is not None:
                item["segmentation"] = rle
            out.append(item)
    return out


def _image_id(pred: Prediction, i: int, image_ids: Sequence[int] | Mapping[str, int] | None) -> int:
    if image_ids is None:
        return i + 1
    if isinstance(image_ids, Mapping):
        if pred.path in image_ids:
            return int(image_ids[pred.path])
        # a ground truth names its files relative to its image folder: the longest
        # trailing part of the path that it names (a/img0.png before img0.png)
        parts = PurePosixPath(Path(pred.path or "").as_posix()).parts
        for k in range(1, len(parts)):
            key = "/".join(parts[k:])
            if key in image_ids:
                return int(image_ids[key])
        raise RecogError(f"{pred.path}: not among the image ids given")
    if i >= len(image_ids):
        raise RecogError(f"image_ids: {len(image_ids)} ids for more predictions")
    return int(image_ids[i])


def _category_id(
    pred: Prediction, c: int, category_ids: Sequence[int] | Mapping[str, int] | None
) -> int:
    if category_ids is None:
        return c + 1
    if isinstance(category_ids, Mapping):
        names = getattr(pred, "class_names", None)
        if not names or c >= len(names):
            raise RecogError("category_ids by name: the predictions carry no class names")
        if names[c] not in category_ids:
            raise RecogError(f"class {names[c]!r}: not among the category ids given")
        return int(category_ids[names[c]])
    if c >= len(category_ids):
        raise RecogError(f"category_ids: {len(category_ids)} ids, but class index {c}")
    return int(category_ids[c])


def coco_ids(gt: str | Path | Mapping[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """An existing COCO ground truth's (file_name -> image id, category name -> id): what
    `to_coco(preds, *coco_ids("instances_val.json"))` needs for its results to be
    evaluated against that file."""
    source = "COCO ground truth" if isinstance(gt, Mapping) else str(gt)
    if not isinstance(gt, Mapping):
        try:
            gt = json.loads(Path(gt).read_text())
        except (OSError, ValueError) as exc:
            raise RecogError(f"{gt}: not a readable COCO JSON file ({exc})") from None
    try:
        images: dict[str, int] = {}
        for im in gt["images"]:
            images[str(im["file_name"])] = int(im["id"])
        categories = {str(c["name"]): int(c["id"]) for c in gt["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise RecogError(
            f"{source}: not a COCO ground truth (no images/categories with ids: {exc!r})"
        ) from None
    return images, categories


def coco_json(
    predictions: Sequence[Prediction], ids: tuple[dict[str, int], dict[str, int]] | None = None
) -> str:
    """`to_coco` as the text `recog predict --format coco [--coco-gt FILE]` prints; `ids`:
    what `coco_ids` read from that file."""
    return json.dumps(to_coco(predictions, *(ids or (None, None))), allow_nan=False)


def _parts(name: str) -> tuple[str, ...]:
    """A file or URL as path parts: `s3://bucket/a/x.jpg` -> (s3, bucket, a, x.jpg)."""
    scheme, sep, rest = name.partition("://")
    if sep:
        return (scheme, *PurePosixPath(rest).parts)
    return Path(os.path.abspath(name)).parts


def mirrored_paths(names: Sequence[str], suffix: str = ".png") -> list[PurePosixPath]:
    """Where each input's drawing goes under `--save-dir`: its path relative to the
    inputs' common folder, with `suffix` (`a/img.jpg`, `b/img.jpg` -> `a/img.png`,
    `b/img.png`).  Two inputs that would still share a file (`img.jpg` and `img.png`
    in one folder) are refused, before anything is written, rather than one
    silently overwriting the other."""
    parts = [_parts(n) for n in names]
    folders = [p[:-1] for p in parts]
    common = 0
    if folders:
        shortest = min(len(f) for f in folders)
        while common < shortest and len({f[common] for f in folders}) == 1:
            common += 1
    out: list[PurePosixPath] = []
    seen: dict[PurePosixPath, str] = {}
    for name, p in zip(names, parts, strict=True):
        rel = PurePosixPath(*[s for s in p[common:] if s not in ("", "/")])
        rel = rel.with_suffix(suffix)
        if rel in seen:
            raise RecogError(
                f"{seen[rel]} and {name}: both would be drawn to {rel} under --save-dir; "
                "predict them in separate runs or rename one"
            )
        seen[rel] = name
        out.append(rel)
    return out
