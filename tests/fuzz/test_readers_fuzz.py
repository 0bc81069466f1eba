"""Property-based fuzzing of every annotation reader and of the image door.

Each target writes a small dataset of structured-but-wrong files (wrong
types, missing keys, negative, huge and NaN numbers, out-of-range class ids,
bad XML, binary garbage, unicode, paths leading out) and reads it: the only
exception allowed out is a RecogError (one line), and each example must end
within the deadline.  The default suite runs `FAST` examples per target,
derandomized (the same examples every run); `make test-all` runs the `slow`
variant with `DEEP` random examples per target.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from recog.data.check import detection_stats, mask_report
from recog.data.classify import load_classification
from recog.data.formats.coco import read_coco, read_coco_image, read_coco_masks
from recog.data.formats.voc import read_voc
from recog.data.formats.yolo import read_yolo
from recog.data.images import image_size, read_image, unreadable
from recog.data.segment import load_segmentation
from recog.errors import RecogError

FAST, DEEP = 40, 500
BUDGETS = [pytest.param(FAST, id="fast"), pytest.param(DEEP, id="deep", marks=pytest.mark.slow)]

# ------------------------------------------------------------------ building blocks
HUGE = 10**400
numbers = st.one_of(
    st.integers(-5, 70),
    st.integers(),
    st.just(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-2.0, 2.0),
)
number_texts = st.one_of(
    numbers.map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "9" * 400, "0x10", "", " ", "1,5", "½"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)
PATHS = ["a.png", "b.png", "empty.png", "missing.png", "../a.png", "/etc/hostname", "", ".",
         "images/a.png", "sub/../a.png", "a.png\x00x", "link.png", "garbage.png"]  # fmt: skip
paths = st.one_of(st.sampled_from(PATHS), st.text(max_size=8))
garbage = st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode))


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` three times in four, so that examples get past the first check and deeper."""
    return st.one_of(good, good, good, bad)


def _image_files(folder: Path, *, link: bool = True) -> None:
    """a.png 8x8, b.png 16x12, an empty file, a non-image and (`link`) a link out of the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "a.png")
    Image.new("L", (16, 12), 128).save(folder / "b.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    if link:
        (folder / "link.png").symlink_to("/etc/hostname")


def run_fuzz(
    budget: int, strategy: st.SearchStrategy, check: Callable[[Path, object], None]
) -> None:
    """Run `check(fresh folder, example)` over `budget` examples; only RecogError may escape."""
    ran = {"examples": 0, "refused": 0}

    @settings(
        max_examples=budget,
        deadline=10_000,  # ms: a slow, shared 2-core machine; a hang would take far longer
        derandomize=budget == FAST,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def fuzz(example: object) -> None:
        ran["examples"] += 1
        folder = Path(tempfile.mkdtemp(prefix="recog-fuzz-"))
        try:
            check(folder, example)
        except RecogError as exc:
            assert "\n" not in str(exc)
            ran["refused"] += 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    fuzz()
    print(f"{ran['examples']} examples, {ran['refused']} refused with a RecogError")


# ------------------------------------------------------------------------------ COCO
ids = mostly(st.integers(1, 3), st.one_of(st.integers(-2, 4), st.text(max_size=2), json_values))
good_paths = st.sampled_from(["a.png", "b.png", "a.png", "b.png", "empty.png", "garbage.png"])
polygons = st.lists(st.lists(numbers, max_size=9), max_size=3)
rles = st.fixed_dictionaries(
    {}, optional={"size": st.one_of(st.lists(numbers, max_size=3), json_values),
                  "counts": st.one_of(st.lists(numbers, max_size=6), st.text(max_size=8), json_values)},
)  # fmt: skip
coco_image = st.fixed_dictionaries(
    {"id": ids, "file_name": mostly(good_paths, st.one_of(paths, json_values))},
    optional={"width": mostly(st.sampled_from([8, 16]), numbers),
              "height": mostly(st.sampled_from([8, 12]), numbers)},
)  # fmt: skip
coco_ann = st.fixed_dictionaries(
    {"image_id": ids, "category_id": ids},
    optional={
        "id": json_values,
        "bbox": mostly(
            st.lists(st.floats(-5, 20), min_size=4, max_size=4),
            st.one_of(st.lists(numbers, min_size=3, max_size=5), json_values),
        ),
        "iscrowd": mostly(st.just(0), st.one_of(st.integers(0, 1), json_values)),
        "segmentation": mostly(
            st.lists(st.lists(st.floats(-2, 20), min_size=6, max_size=10), min_size=1, max_size=2),
            st.one_of(polygons, rles, json_values),
        ),
    },
)
coco_cat = st.fixed_dictionaries(
    {
        "id": ids,
        "name": mostly(
            st.sampled_from(["x", "y", "z"]), st.one_of(st.text(max_size=4), json_values)
        ),
    }
)
coco_parts = {
    "images": mostly(st.lists(coco_image, min_size=1, max_size=4), json_values),
    "categories": mostly(st.lists(coco_cat, min_size=1, max_size=3), json_values),
    "annotations": mostly(st.lists(coco_ann, max_size=5), json_values),
}
coco_doc = mostly(
    st.fixed_dictionaries(coco_parts),
    st.one_of(st.fixed_dictionaries({}, optional=coco_parts), json_values),
)


def _check_coco(folder: Path, example: object) -> None:
    _image_files(folder)
    path = folder / "c.json"
    if isinstance(example, bytes):
        path.write_bytes(example)
    else:
        path.write_text(json.dumps(example))
    try:
        read_coco(path)
    except RecogError:
        pass
    images, cat_index, _ = read_coco_masks(path)
    for info in images:
        read_coco_image(info, cat_index)


@pytest.mark.parametrize("budget", BUDGETS)
def test_coco_json(budget):
    run_fuzz(budget, st.one_of(coco_doc, garbage), _check_coco)


# ------------------------------------------------------------------------------ YOLO
good_line = st.tuples(st.integers(0, 3), *[st.floats(-0.2, 1.2)] * 4).map(
    lambda t: " ".join(map(str, t))
)
label_lines = st.lists(
    mostly(good_line, st.lists(number_texts, max_size=8).map(" ".join)), max_size=4
).map("\n".join)
yolo_names = {
    "names": mostly(
        st.just(["cat", "dog", "bird"]),
        st.one_of(
            st.lists(st.text(max_size=4), max_size=3),
            st.dictionaries(
                st.one_of(st.integers(-1, 3), st.text(max_size=2)), st.text(max_size=3), max_size=3
            ),
            json_values,
        ),
    ),
}
yolo_more = {
    "nc": mostly(st.just(3), json_values),
    "path": st.one_of(st.sampled_from([".", "..", "/", "images", "nowhere", ""]), json_values),
    "train": st.one_of(st.sampled_from(["images", "list.txt", "../x", "images/a.png"]),
                       st.lists(st.sampled_from(["images", "list.txt", "/etc"]), max_size=2), json_values),
    "val": st.one_of(st.sampled_from(["images", "list.txt", "labels"]), json_values),
}  # fmt: skip
yolo_cfg = mostly(
    st.fixed_dictionaries(yolo_names, optional=yolo_more),
    st.fixed_dictionaries({}, optional={**yolo_names, **yolo_more}),
)
yolo_case = st.tuples(
    mostly(yolo_cfg.map(lambda c: yaml.safe_dump(c, allow_unicode=True)), st.text(max_size=200)),
    label_lines,
    label_lines,
    st.lists(paths, max_size=4).map("\n".join),
    mostly(st.just(False), st.just(True)),  # a link out of the folder among the images
)


def _check_yolo(folder: Path, example: object) -> None:
    cfg, label_a, label_b, listing, link = example  # type: ignore[misc]
    _image_files(folder / "images", link=link)
    (folder / "labels").mkdir()
    (folder / "labels" / "a.txt").write_text(label_a)
    (folder / "labels" / "b.txt").write_text(label_b)
    (folder / "list.txt").write_text(listing)
    (folder / "data.yaml").write_text(cfg)
    read_yolo(folder)
    detection_stats(folder)


@pytest.mark.parametrize("budget", BUDGETS)
def test_yolo_labels_and_yaml(budget):
    run_fuzz(budget, yolo_case, _check_yolo)


# ------------------------------------------------------------------------------- VOC
def _xml_text(text: str, escape: bool) -> str:
    from xml.sax.saxutils import escape as esc

    return esc(text) if escape else text


voc_object = st.fixed_dictionaries(
    {},
    optional={
        "name": mostly(st.sampled_from(["cat", "dog"]), st.text(max_size=4)),
        **{
            tag: mostly(st.integers(-2, 20).map(str), number_texts)
            for tag in ("xmin", "ymin", "xmax", "ymax")
        },
    },
)
voc_case = mostly(
    st.tuples(
        mostly(good_paths, st.one_of(paths, st.none())),
        mostly(st.just(("8", "8")), st.one_of(st.tuples(number_texts, number_texts), st.none())),
        st.lists(voc_object, max_size=3),
        mostly(st.just(True), st.just(False)),
    ),
    garbage,
)


def _voc_xml(example: tuple) -> str:
    filename, size, objects, escape = example
    parts = ["<annotation>"]
    if filename is not None:
        parts.append(f"<filename>{_xml_text(filename, escape)}</filename>")
    if size is not None:
        parts.append(f"<size><width>{_xml_text(size[0], escape)}</width>"
                     f"<height>{_xml_text(size[1], escape)}</height></size>")  # fmt: skip
    for obj in objects:
        parts.append("<object>")
        if "name" in obj:
            parts.append(f"<name>{_xml_text(obj['name'], escape)}</name>")
        box = "".join(
            f"<{t}>{_xml_text(obj[t], escape)}</{t}>"
            for t in ("xmin", "ymin", "xmax", "ymax")
            if t in obj
        )
        parts.append(f"<bndbox>{box}</bndbox></object>")
    return "".join(parts) + "</annotation>"


def _check_voc(folder: Path, example: object) -> None:
    _image_files(folder / "images")
    (folder / "annotations").mkdir()
    xml = folder / "annotations" / "a.xml"
    if isinstance(example, bytes):
        xml.write_bytes(example)
    else:
        xml.write_text(_voc_xml(example), encoding="utf-8")  # type: ignore[arg-type]
    read_voc(folder)


@pytest.mark.parametrize("budget", BUDGETS)
def test_voc_xml(budget):
    run_fuzz(budget, voc_case, _check_voc)


# ------------------------------------------------------------------------ mask folders
MODES = ["L", "P", "I;16", "1", "RGB", "LA", "I", "F", "RGBA"]
mask_case = st.tuples(
    st.lists(
        st.tuples(
            st.sampled_from(MODES),
            st.integers(1, 12),
            st.integers(1, 12),
            mostly(st.just(True), st.just(False)),  # same size as its image
            mostly(  # the values drawn from
                st.lists(st.integers(0, 3), min_size=1, max_size=3),
                st.lists(st.integers(0, 70000), min_size=1, max_size=4),
            ),
            mostly(st.none(), st.binary(max_size=64)),  # garbage instead of a mask
        ),
        min_size=2,
        max_size=4,
    ),
    mostly(st.none(), st.sampled_from(["a,b", "a,b,c", "", ",", "a", "a,,b"])),
    mostly(st.none(), st.one_of(yolo_cfg.map(yaml.safe_dump), st.text(max_size=60))),
    st.integers(0, 2**32 - 1),
)


def _mask_file(
    folder: Path, stem: str, mode: str, w: int, h: int, values: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    pick = np.asarray(values)[rng.integers(0, len(values), (h, w))]
    if mode in ("L", "P", "1", "LA", "RGB", "RGBA"):
        img = Image.fromarray((pick % 256).astype(np.uint8)).convert(mode)
        if mode == "RGB" and seed % 2:
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img.save(folder / f"{stem}.png")
    elif mode == "I;16":
        Image.fromarray((pick % 65536).astype(np.uint16)).save(folder / f"{stem}.png")
    elif mode == "I":
        Image.fromarray((pick - 35000).astype(np.int32)).save(folder / f"{stem}.tif")
    else:
        Image.fromarray(pick.astype(np.float32) / 7).save(folder / f"{stem}.tif")


def _check_masks(folder: Path, example: object) -> None:
    masks, classes, data_yaml, seed = example  # type: ignore[misc]
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    for i, (mode, w, h, same, values, junk) in enumerate(masks):
        Image.new("RGB", (w, h) if same else (h + 1, w)).save(folder / "images" / f"{i}.png")
        if junk is not None:
            (folder / "masks" / f"{i}.png").write_bytes(junk)
        else:
            _mask_file(folder / "masks", str(i), mode, w, h, values, seed + i)
    if data_yaml is not None:
        (folder / "data.yaml").write_text(data_yaml)
    mask_report(folder, classes=classes)
    splits = load_segmentation(str(folder), instance=False, img_size=8, classes=classes)
    for dataset in (splits.train, splits.val):
        for index in range(len(dataset)):
            dataset[index]


@pytest.mark.parametrize("budget", BUDGETS)
def test_mask_folders(budget):
    run_fuzz(budget, mask_case, _check_masks)


# ------------------------------------------------------------------------- CSV lists
csv_case = mostly(
    st.lists(
        st.tuples(
            mostly(good_paths, paths),
            mostly(st.sampled_from(["ants", "bees"]), st.text(max_size=4)),
        ),
        max_size=8,
    ).map(lambda rows: "\n".join(f"{p},{label}" for p, label in rows)),
    st.one_of(st.text(max_size=200), garbage),
)


def _check_csv(folder: Path, example: object) -> None:
    _image_files(folder)
    path = folder / "list.csv"
    if isinstance(example, bytes):
        path.write_bytes(example)
    else:
        path.write_text(example, encoding="utf-8")  # type: ignore[arg-type]
    load_classification(str(path), img_size=8, cache="off")


@pytest.mark.parametrize("budget", BUDGETS)
def test_csv_class_lists(budget):
    run_fuzz(budget, csv_case, _check_csv)


# ------------------------------------------------------------------- the image door
def _seed_images() -> list[bytes]:
    out = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"),
                      ("TIFF", "I;16"), ("WEBP", "RGB"), ("PNG", "LA")):  # fmt: skip
        buf = io.BytesIO()
        Image.new(mode, (9, 7)).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_images()


def _png_header(width: int, height: int, depth: int, colour: int) -> bytes:
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))


image_case = st.one_of(
    st.tuples(
        st.sampled_from(range(len(SEEDS))),
        st.integers(0, 400),  # cut here
        st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),  # byte flips
    ).map(lambda t: _mutate(SEEDS[t[0]], t[1], t[2])),
    st.tuples(
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.sampled_from([1, 2, 4, 8, 16, 3]),
        st.sampled_from([0, 2, 3, 4, 6, 5]),
        st.binary(max_size=40),
    ).map(lambda t: _png_header(*t[:4]) + t[4]),  # fmt: skip
    garbage,
)


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: max(1, min(cut, len(data)))] if cut else data)
    for at, value in flips:
        out[at % len(out)] = value
    return bytes(out)


def _check_image(folder: Path, example: object) -> None:
    path = folder / "x.img"
    path.write_bytes(example)  # type: ignore[arg-type]
    unreadable(path)
    image_size(path)
    image = read_image(path)
    assert image.dtype.is_floating_point is False and image.shape[0] == 3


@pytest.mark.parametrize("budget", BUDGETS)
def test_image_door(budget):
    run_fuzz(budget, image_case, _check_image)
