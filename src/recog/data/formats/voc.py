"""Pascal VOC XML annotations: `read_voc` and `write_voc`.

Layouts read: `root/annotations/*.xml` + `root/images/` (as the raccoon set
ships) and Pascal's own `root/Annotations/*.xml` + `root/JPEGImages/`;
`write_voc` writes the Pascal one.  An image is found by the XML's
`<filename>`, else (with a warning) by the XML's stem with a usual image
suffix; a filename leading out of the dataset folder is an error (a symbolic
link inside it is the user's own and is followed: `recog.data.images.confine`).  `<size>` must be the image's real size (`sizes.SizeCheck`).

Box convention: VOC stores 1-based, inclusive pixel indices, so a box over
pixels 1..W covers the whole image.  Read: `(xmin, ymin, xmax, ymax)` ->
xyxy pixel edges `(xmin - 1, ymin - 1, xmax, ymax)`; write the inverse.
Coordinates are written to 0.001 px, so integer (and up to 3-decimal)
boxes round-trip exactly.  `<difficult>` objects are kept like any other.
VOC stores no class list: classes are the sorted set of `<name>`s unless
`class_names` is given (pass it to keep an order or unused classes).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from recog.data.formats.records import (
    BoxChecker,
    DetectionAnnotations,
    DetectionRecord,
    finite_number,
    format_coord,
    link_or_copy,
    output_names,
)
from recog.data.formats.sizes import SizeCheck
from recog.data.images import DETECTION_IMAGE_SUFFIXES, confine
from recog.errors import RecogError
from recog.io import atomic_write_text

_LAYOUTS = (("Annotations", "JPEGImages"), ("annotations", "images"))


def find_voc_dirs(root: Path) -> tuple[Path, Path] | None:
    """(annotation folder, image folder) of a VOC dataset, or None when `root` is not one."""
    for ann_name, img_name in _LAYOUTS:
        ann_dir = root / ann_name
        if ann_dir.is_dir() and any(ann_dir.glob("*.xml")):
            images = [root / name for _, name in _LAYOUTS if (root / name).is_dir()]
            return ann_dir, images[0] if images else root / img_name
    return None


def _parse(xml_path: Path) -> ET.Element:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise RecogError(f"{xml_path}: malformed XML ({exc})") from None
    if root.tag != "annotation":
        raise RecogError(
            f"{xml_path}: not a VOC annotation (root element <{root.tag}>, expected <annotation>)"
        )
    return root


def _find_image(
    xml_path: Path, root: ET.Element, image_dir: Path, data_root: Path, warnings: list[str]
) -> Path | None:
    """The image `<filename>` names (else the XML's stem with an image suffix, with a
    warning: the file did not say so), inside `data_root`."""
    filename = (root.findtext("filename") or "").strip()
    where = f"{xml_path}: <filename>"
    named = confine(image_dir / filename, data_root, where=where) if filename else None
    if named is not None and named.is_file():
        return confine(named, data_root, where=str(xml_path))
    by_stem = (image_dir / f"{xml_path.stem}{suffix}" for suffix in DETECTION_IMAGE_SUFFIXES)
    found = next((c for c in by_stem if c.is_file()), None)
    if found is None:
        return None
    said = f"{filename!r} is not in {image_dir}" if filename else "is missing"
    warnings.append(f"{where} {said}; used {found.name}, found by the annotation's name")
    return confine(found, data_root, where=str(xml_path))


def _size(
    xml_path: Path, root: ET.Element, image: Path, sizes: SizeCheck
) -> tuple[int, int] | None:
    """(width, height) of `image`, checked against <size> (`SizeCheck`); None when the
    image cannot be read."""
    width, height = (
        None if text is None else finite_number(text, where=f"{xml_path}: <size><{tag}>")
        for tag, text in (
            ("width", root.findtext("size/width")),
            ("height", root.findtext("size/height")),
        )
    )
    return sizes.size(width, height, image, where=str(xml_path), fields=("<width>", "<height>"))


def _objects(xml_path: Path, root: ET.Element) -> list[tuple[str, list[float]]]:
    """(class name, xyxy pixel edges) per <object>, in file order."""
    objects = []
    for i, obj in enumerate(root.findall("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise RecogError(f"{xml_path}: object {i}: no <name>")
        box = obj.find("bndbox")
        if box is None:
            raise RecogError(f"{xml_path}: object {i}: no <bndbox>")
        coords = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = box.findtext(tag)
            if text is None:
                raise RecogError(f"{xml_path}: object {i}: <bndbox> has no <{tag}>")
            coords.append(finite_number(text.strip(), where=f"{xml_path}: object {i} <{tag}>"))
        xmin, ymin, xmax, ymax = coords
        objects.append((name, [xmin - 1, ymin - 1, xmax, ymax]))
    return objects


def read_voc(root: str | Path, *, class_names: list[str] | None = None) -> DetectionAnnotations:
    """Every `*.xml` under the annotation folder of `root`, sorted by file name."""
    root = Path(root)
    dirs = find_voc_dirs(root)
    if dirs is None:
        raise RecogError(f"{root}: no annotations/ or Annotations/ folder of .xml files")
    ann_dir, image_dir = dirs
    checker = BoxChecker()
    sizes = SizeCheck()
    parsed = []
    for xml_path in sorted(ann_dir.glob("*.xml")):
        tree = _parse(xml_path)
        image = _find_image(xml_path, tree, image_dir, root, checker.warnings)
        if image is None:
            wanted = (tree.findtext("filename") or "").strip() or f"{xml_path.stem}.*"
            checker.warnings.append(f"{xml_path}: image {image_dir / wanted} not found; skipped")
            continue
        size = _size(xml_path, tree, image, sizes)
        if size is not None:  # else an unreadable image, as a missing one
            parsed.append((xml_path, image, size, _objects(xml_path, tree)))
    checker.warnings += sizes.finish()
    if not parsed:
        raise RecogError(f"{ann_dir}: none of the annotated images were found in {image_dir}")

    names = (
        class_names
        if class_names is not None
        else sorted({n for *_, objs in parsed for n, _ in objs})
    )
    index = {name: i for i, name in enumerate(names)}
    records = []
    for xml_path, image, (width, height), objects in parsed:
        for i, (name, _) in enumerate(objects, start=1):
            if name not in index:
                raise RecogError(
                    f"{xml_path}: object {i}: class {name!r} is not in the class names {names}"
                )
        boxes, labels = checker.clean(
            [box for _, box in objects],
            [index[name] for name, _ in objects],
            width=width,
            height=height,
            where=str(xml_path),
            names=[f"object {i}" for i in range(1, len(objects) + 1)],
        )
        records.append(DetectionRecord(image, width, height, boxes, labels))
    return DetectionAnnotations(records, list(names), checker.finish())


def _to_xml(record: DetectionRecord, *, filename: str, class_names: list[str]) -> str:
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = "JPEGImages"
    ET.SubElement(ann, "filename").text = filename
    size = ET.SubElement(ann, "size")
    ET.SubElement(size, "width").text = str(record.width)
    ET.SubElement(size, "height").text = str(record.height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(ann, "segmented").text = "0"
    for (x1, y1, x2, y2), label in zip(record.boxes.tolist(), record.labels.tolist(), strict=True):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = class_names[label]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for tag, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(box, tag).text = format_coord(value)
    ET.indent(ann, space="\t")
    return ET.tostring(ann, encoding="unicode") + "\n"


def write_voc(ann: DetectionAnnotations, out_dir: str | Path) -> Path:
    """`out_dir/Annotations/<stem>.xml` per image and `out_dir/JPEGImages/` of copies (reflinks where possible).

    Files of the same names are replaced; anything else in `out_dir` is left alone.
    """
    out_dir = Path(out_dir)
    (out_dir / "Annotations").mkdir(parents=True, exist_ok=True)
    for record, name in zip(ann.records, output_names(ann.records, flat=True), strict=True):
        link_or_copy(record.path, out_dir / "JPEGImages" / name)
        xml = _to_xml(record, filename=name, class_names=ann.class_names)
        atomic_write_text(out_dir / "Annotations" / f"{Path(name).stem}.xml", xml)
    return out_dir
