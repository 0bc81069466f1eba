"""The door to the detection formats: `read_detection` and `write_detection` pick COCO, YOLO or VOC.

Which format a path holds is `detect_format`'s answer among the three; the
errors here say what a detection path should have been.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from recog.data.formats import NOT_DETECTION, DataFormat, detect_format
from recog.data.formats.coco import read_coco, write_coco
from recog.data.formats.records import DetectionAnnotations, with_class_names
from recog.data.formats.voc import read_voc, write_voc
from recog.data.formats.yolo import read_yolo, write_yolo
from recog.errors import RecogError

DetectionFormat = Literal["coco", "yolo", "voc"]
DETECTION_FORMATS: tuple[str, ...] = get_args(DetectionFormat)
_READ_ORDER = (DataFormat.COCO, DataFormat.YOLO, DataFormat.VOC)


def detection_format(path: str | Path) -> DataFormat:
    """Which format `path` holds: a .json file is COCO, a .yaml file or a folder with a
    YAML naming classes is YOLO, a folder with annotations/ or Annotations/ of XML is VOC."""
    path = Path(path)
    if not path.exists():
        raise RecogError(f"{path}: no such file or folder")
    fmt = detect_format(path, among=_READ_ORDER)
    if fmt is not None:
        return fmt
    if path.is_file():
        raise RecogError(
            f"{path}: not a detection annotation file (expected a COCO .json or a YOLO .yaml)"
        )
    raise RecogError(f"{path}: {NOT_DETECTION}")


def read_detection(
    path: str | Path, *, class_names: list[str] | None = None
) -> DetectionAnnotations:
    """Read COCO, YOLO or VOC annotations, whichever `path` holds (see `detection_format`).

    class_names: the class order to use; labels are re-indexed into it and a
    class found in the data but not in it is a RecogError.
    """
    fmt = detection_format(path)
    if fmt is DataFormat.VOC:
        return read_voc(path, class_names=class_names)
    ann = read_coco(path) if fmt is DataFormat.COCO else read_yolo(path)
    if class_names is not None:
        ann = with_class_names(ann, class_names=class_names, source=path)
    return ann


def write_detection(ann: DetectionAnnotations, out: str | Path, *, fmt: DetectionFormat) -> Path:
    """Write `ann` as `fmt` under `out`; returns what to hand `read_detection` next.

    coco: `out` is the JSON file (or a folder, which gets `annotations.json`);
    yolo and voc: `out` is the dataset folder.  Images are referenced (COCO)
    or copied (YOLO, VOC: `records.link_or_copy`, reflinked where possible), never
    re-encoded.
    """
    out = Path(out)
    if fmt == "coco":
        return write_coco(ann, out if out.suffix.lower() == ".json" else out / "annotations.json")
    if fmt == "yolo":
        return write_yolo(ann, out)
    if fmt == "voc":
        return write_voc(ann, out)
    raise RecogError(
        f"unknown annotation format {fmt!r}; choose one of {', '.join(DETECTION_FORMATS)}"
    )
