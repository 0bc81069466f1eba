"""Source formats, and the one answer to "what is this path": `detect_format`.

One module per format: `class_folders` (class folders and CSV lists),
`coco` (boxes and masks), `voc`, `yolo`, `masks` (image/mask folders),
`digits` and `shapes` (built in); `records` holds the detection records the
detection readers return, `sizes` holds the image sizes COCO and VOC record
against the files, `detection` picks a detection reader, `convert` writes one
format as another.

`detect_format(spec, among=...)` looks at a path's name and folder layout (no
file is parsed, except the YAMLs that may name YOLO classes) and answers with
the first of the formats `among` that fits, in the order given: each caller
passes the formats it reads, in the order it prefers them.  `infer_task` maps
the answer to the task it implies.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from recog.data.formats.coco import find_coco_splits
from recog.data.formats.masks import is_mask_dir
from recog.data.formats.voc import find_voc_dirs
from recog.data.formats.yolo import find_data_yaml
from recog.errors import RecogError
from recog.types import TaskName


class DataFormat(StrEnum):
    DIGITS = "digits"  # scikit-learn's 8x8 digits, built in
    SHAPES = "shapes"  # the procedural scenes, built in: `shapes` or `shapes:TRAIN:VAL`
    CLASS_FOLDERS = "class-folders"  # root/<class>/* or root/{train,val}/<class>/*
    CLASS_CSV = "csv"  # a `path,label` list
    COCO = "coco"  # a COCO .json (boxes; segmentations for masks), or COCO's own layout
    VOC = "voc"  # annotations/ (or Annotations/) of Pascal XML
    YOLO = "yolo"  # a data.yaml with labels/, or the .yaml itself
    MASK_FOLDERS = "masks"  # images/ + masks/, or once per split


#: what each task's loaders read, in the order they prefer
TASK_FORMATS: dict[TaskName, tuple[DataFormat, ...]] = {
    TaskName.CLASSIFY: (DataFormat.DIGITS, DataFormat.CLASS_CSV, DataFormat.CLASS_FOLDERS),
    TaskName.DETECT: (DataFormat.SHAPES, DataFormat.COCO, DataFormat.YOLO, DataFormat.VOC),
    TaskName.SEGMENT: (DataFormat.SHAPES, DataFormat.COCO, DataFormat.MASK_FOLDERS),
}
# infer_task's order: a mask folder first, then what detection reads, then classification
_INFER_ORDER = (
    DataFormat.MASK_FOLDERS,
    DataFormat.SHAPES,
    DataFormat.COCO,
    DataFormat.YOLO,
    DataFormat.VOC,
    *TASK_FORMATS[TaskName.CLASSIFY],
)
_TASK_OF = {
    DataFormat.MASK_FOLDERS: TaskName.SEGMENT,
    DataFormat.SHAPES: TaskName.DETECT,  # shapes serve both; detection is the default
    DataFormat.COCO: TaskName.DETECT,  # boxes unless --task segment or a mask model says
    DataFormat.YOLO: TaskName.DETECT,
    DataFormat.VOC: TaskName.DETECT,
    **dict.fromkeys(TASK_FORMATS[TaskName.CLASSIFY], TaskName.CLASSIFY),
}

#: the folders that mark a folder as meant to hold detection annotations
DETECTION_FOLDERS = ("annotations", "Annotations", "labels")
NOT_DETECTION = (
    "not a detection dataset (expected a COCO .json, COCO's own layout "
    "(annotations/instances_<split>.json beside <split>/ image folders), a YOLO folder with "
    "data.yaml, images/ and labels/, or a VOC folder with annotations/ or Annotations/ of .xml files)"
)
NOT_SEGMENTATION = (
    "not segmentation data (expected images/ and masks/ folders, "
    "a COCO JSON with segmentations, or shapes)"
)


def _detection_folder(path: Path, among: Sequence[DataFormat]) -> DataFormat | None:
    """YOLO or VOC for a folder (when among), None when neither; both, or an annotation
    folder with neither layout, is an error."""
    yolo = DataFormat.YOLO in among and find_data_yaml(path) is not None
    yolo = yolo and (path / "labels").is_dir()
    voc = DataFormat.VOC in among and find_voc_dirs(path) is not None
    if yolo and voc:
        raise RecogError(
            f"{path}: holds both a YOLO data.yaml with labels/ and VOC XML annotations; "
            "pass the .yaml file or move one of them"
        )
    if yolo or voc:
        return DataFormat.YOLO if yolo else DataFormat.VOC
    if {DataFormat.YOLO, DataFormat.VOC} <= set(among) and any(
        (path / d).is_dir() for d in DETECTION_FOLDERS
    ):
        raise RecogError(f"{path}: {NOT_DETECTION}")
    return None


def _fits(fmt: DataFormat, spec: str, path: Path, among: Sequence[DataFormat]) -> bool:
    suffix = path.suffix.lower()
    if fmt is DataFormat.DIGITS:
        return spec == "digits"
    if fmt is DataFormat.SHAPES:
        return spec.split(":")[0] == "shapes"
    if fmt is DataFormat.MASK_FOLDERS:
        return is_mask_dir(path)
    if fmt is DataFormat.COCO:
        if path.is_dir():  # the official layout: annotations/instances_<split>.json + <split>/
            return bool(find_coco_splits(path))
        return suffix == ".json"
    if fmt is DataFormat.CLASS_CSV:
        return suffix == ".csv" and path.is_file()
    if fmt is DataFormat.CLASS_FOLDERS:
        return path.is_dir()
    if fmt is DataFormat.YOLO and path.is_file():
        return suffix in (".yaml", ".yml")
    return path.is_dir() and _detection_folder(path, among) is fmt


def detect_format(
    spec: str | Path, *, among: Sequence[DataFormat] = _INFER_ORDER
) -> DataFormat | None:
    """The first format of `among` that `spec` fits, or None (a missing path fits only
    by its name: a built-in, or a .json).

    A folder fitting both YOLO and VOC, or holding annotations/ or labels/ in
    neither layout, is a RecogError when both are among the candidates.
    """
    spec = str(spec)
    path = Path(spec)
    return next((fmt for fmt in among if _fits(fmt, spec, path, among)), None)


def infer_task(data: str) -> TaskName:
    """The task a data source implies when neither --task nor --model says."""
    fmt = detect_format(data)
    path = Path(data)
    # Kept from infer_task before detect_format (delete to unify): a YOLO .yaml file
    # named directly, and a COCO file whose suffix is not lower-case, implied classify.
    if (fmt is DataFormat.YOLO and path.is_file()) or (
        fmt is DataFormat.COCO and path.suffix != ".json" and not path.is_dir()
    ):
        return TaskName.CLASSIFY
    return _TASK_OF[fmt] if fmt is not None else TaskName.CLASSIFY


def segmentation_format(
    spec: str | Path, *, among: Sequence[DataFormat] = TASK_FORMATS[TaskName.SEGMENT]
) -> DataFormat | None:
    """`detect_format` among the segmentation formats, as the segmentation loaders ask it."""
    fmt = detect_format(spec, among=among)
    # Kept from the segmentation loaders before detect_format (delete to unify): only a
    # lower-case ".json" is COCO there.
    return None if fmt is DataFormat.COCO and Path(spec).suffix != ".json" else fmt
