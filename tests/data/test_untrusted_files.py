"""What a user hands recog never crashes it: image limits before decoding, corrupt images found
at load time, annotation paths kept inside their dataset, mask classes that are not guessed."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from serving import animated_gif, png_bomb

from recog.data.check import check_dataset, detection_stats
from recog.data.classify import load_classification
from recog.data.detect import load_detection
from recog.data.images import MAX_BYTES, MAX_PIXELS, image_size, read_image
from recog.data.segment import load_segmentation
from recog.errors import RecogError


def png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR (8-bit RGB) with a valid CRC, an empty IDAT and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return message


# ---------------------------------------------------------------- 1. limits before decoding
@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("header.png", lambda: png_header(100_000, 100_000)),  # 10^10 pixels declared
        ("bomb.png", lambda: png_bomb(12_000)),  # a real PNG, 144 M pixels in ~140 KB
    ],
)
def test_huge_pixel_counts_are_refused_before_decoding(tmp_path, capfd, name, payload):
    path = tmp_path / name
    path.write_bytes(payload())
    start = time.perf_counter()
    for read in (read_image, image_size):
        with pytest.raises(RecogError) as exc:
            read(path)
        message = one_line_naming(exc, path)
        assert "pixels" in message and f"limit is {MAX_PIXELS:,}" in message
    assert time.perf_counter() - start < 2.0  # a decode of 144 M pixels takes longer here
    assert capfd.readouterr().err == ""  # no C++ stack trace from an attempted allocation


def test_big_files_and_long_animations_are_refused(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as f:  # sparse: the size is what counts, it is never read
        f.write(png_header(10, 10))
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(RecogError) as exc:
        read_image(big)
    assert f"limit is {MAX_BYTES:,}" in one_line_naming(exc, big)
    gif = tmp_path / "long.gif"
    gif.write_bytes(animated_gif(300))
    with pytest.raises(RecogError) as exc:
        read_image(gif)
    assert "frames" in one_line_naming(exc, gif)
    short = tmp_path / "short.gif"
    short.write_bytes(animated_gif(3))
    assert read_image(short).shape == (3, 8, 8)


# ------------------------------------------------------- 2. corrupt images at load time
def _noise_jpeg(path: Path, *, truncate: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(len(path.name)).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def _voc_set(root: Path, n: int, *, truncated: set[int]) -> Path:
    (root / "annotations").mkdir(parents=True)
    for i in range(n):
        _noise_jpeg(root / "images" / f"{i}.jpg", truncate=i in truncated)
        (root / "annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.jpg</filename><size><width>64</width>"
            "<height>48</height></size><object><name>cat</name><bndbox><xmin>2</xmin>"
            "<ymin>2</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object></annotation>"
        )
    return root


def test_truncated_jpeg_in_a_detection_set_is_skipped_before_training(tmp_path, capsys):
    root = _voc_set(tmp_path / "voc", 6, truncated={3})
    splits = load_detection(str(root), img_size=32, val_split=0.5, seed=0)
    assert [Path(p).name for p, _ in splits.skipped] == ["3.jpg"]
    assert len(splits.train) + len(splits.val) == 5
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "skipped 1 unreadable image" in warnings[0]
    for index in range(len(splits.val)):  # every image left decodes: no crash after epoch 1
        splits.val[index]
    with pytest.raises(RecogError, match=r"3\.jpg: .*--strict"):
        load_detection(str(root), img_size=32, val_split=0.5, seed=0, strict=True)
    report = detection_stats(root)
    assert any("3.jpg" in p for p in report["problems"])


def test_empty_image_named_by_a_coco_file_is_skipped(tmp_path):
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _noise_jpeg(tmp_path / name)
    (tmp_path / "c.jpg").write_bytes(b"")
    images = [
        {"id": i, "file_name": n, "width": 64, "height": 48}
        for i, n in enumerate(("a.jpg", "b.jpg", "c.jpg"), 1)
    ]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 10, 10]} for i in (1, 2, 3)]
    path = tmp_path / "coco.json"
    path.write_text(
        json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    )
    splits = load_detection(str(path), img_size=32, val_split=0.5, seed=0)
    assert splits.skipped == [(str(tmp_path / "c.jpg"), "empty file (0 bytes)")]


def test_corrupt_image_in_a_mask_set_is_skipped_or_fatal(tmp_path):
    root = tmp_path / "m"
    (root / "masks").mkdir(parents=True)
    for i in range(5):
        _noise_jpeg(root / "images" / f"{i}.jpg", truncate=i == 1)
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "masks" / f"{i}.png")
    (root / "data.yaml").write_text("classes: [bg, fg]\n")
    splits = load_segmentation(str(root), instance=False, img_size=32, val_split=0.4)
    assert [Path(p).name for p, _ in splits.skipped] == ["1.jpg"]
    assert len(splits.train) + len(splits.val) == 4
    with pytest.raises(RecogError, match=r"1\.jpg.*--strict"):
        load_segmentation(str(root), instance=False, img_size=32, val_split=0.4, strict=True)


def test_class_whose_every_image_is_corrupt_is_refused_unless_classes_are_given(tmp_path, capsys):
    for i in range(4):
        _noise_jpeg(tmp_path / "ants" / f"{i}.jpg")
        _noise_jpeg(tmp_path / "bees" / f"{i}.jpg")
        (tmp_path / "wasps" / f"{i}.jpg").parent.mkdir(exist_ok=True)
        (tmp_path / "wasps" / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(RecogError, match="class 'wasps' has no readable training images"):
        load_classification(str(tmp_path), img_size=16, cache="off")
    splits = load_classification(
        str(tmp_path), img_size=16, cache="off", class_names=["ants", "bees", "wasps"]
    )
    assert splits.class_names == ["ants", "bees", "wasps"]
    assert "'wasps' has no readable training images" in capsys.readouterr().err


def test_check_reports_a_truncated_jpeg_in_class_folders(tmp_path):
    for i in range(3):
        _noise_jpeg(tmp_path / "ants" / f"{i}.jpg")
        _noise_jpeg(tmp_path / "bees" / f"{i}.jpg", truncate=i == 0)
    report = check_dataset(str(tmp_path))
    assert [Path(c["path"]).name for c in report["corrupt"]] == ["0.jpg"]
    assert report["splits"]["all"] == {"ants": 3, "bees": 2}


def test_png_with_no_image_data_is_an_error_not_a_crash(tmp_path):
    """torchvision 0.29's PNG decoder segfaults on this file; run it where a crash is visible."""
    path = tmp_path / "empty-idat.png"
    path.write_bytes(png_header(10, 10))
    code = f"from recog.data.images import read_image\nread_image({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr  # a RecogError, not SIGSEGV (-11)
    assert proc.stderr.strip().splitlines()[-1].startswith(f"recog.errors.RecogError: {path}:")


# ------------------------------------------------------------ 3. data check's exit status
@pytest.mark.parametrize("as_json", [True, False])
def test_data_check_exits_1_when_it_finds_problems(tmp_path, capsys, as_json):
    from recog.cli import main

    for i in range(3):
        _noise_jpeg(tmp_path / "ants" / f"{i}.jpg")
        _noise_jpeg(tmp_path / "bees" / f"{i}.jpg")
    flag = ["--json"] if as_json else []
    assert main(["data", "check", str(tmp_path), *flag]) == 0
    _noise_jpeg(tmp_path / "bees" / "cut.jpg", truncate=True)
    assert main(["data", "check", str(tmp_path), *flag]) == 1
    out = capsys.readouterr().out
    assert "cut.jpg" in out
    if as_json:
        assert json.loads(out[out.rindex("\n{") :])["corrupt"][0]["path"].endswith("cut.jpg")
    assert main(["data", "stats", str(tmp_path), *flag]) == 0


# ------------------------------------------------ 4. annotation paths stay in their dataset
def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(secret)
    return secret


def test_voc_filename_leading_out_is_refused_and_not_linked(tmp_path):
    from recog.data.formats.convert import convert_detection

    _outside(tmp_path)
    root = _voc_set(tmp_path / "voc", 2, truncated=set())
    xml = root / "annotations" / "1.xml"
    xml.write_text(xml.read_text().replace("1.jpg", "../../elsewhere/secret.png"))
    with pytest.raises(RecogError) as exc:
        convert_detection(root, to="yolo", out=tmp_path / "out")
    message = one_line_naming(exc, xml)
    assert "secret.png" in message and "outside the dataset folder" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["coco", "yolo-list", "yolo-path", "csv", "csv-through-link"])
def test_paths_named_out_of_the_dataset_are_refused(tmp_path, kind):
    """Text (an annotation file, a list, a CSV) that names a path leading out is refused,
    also through a link of the user's own (`linkdir/../x` cannot climb out of it); the
    links themselves are followed (test_symlinks.py)."""
    from recog.data.formats.class_folders import read_csv
    from recog.data.formats.coco import read_coco
    from recog.data.formats.yolo import read_yolo

    secret = _outside(tmp_path)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "a.png")
    if kind == "coco":
        named = root / "c.json"
        images = [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": str(secret)}]
        named.write_text(json.dumps({"images": images, "categories": []}))
        read = lambda: read_coco(named)  # noqa: E731
    elif kind.startswith("yolo"):
        named = root / "data.yaml"
        (root / "list.txt").write_text("images/a.png\n../elsewhere/secret.png\n")
        entry = "path: ../elsewhere\n" if kind == "yolo-path" else "train: list.txt\n"
        named.write_text(entry + "names: [x]\n")
        named = root / "list.txt" if kind == "yolo-list" else named
        read = lambda: read_yolo(root)  # noqa: E731
    elif kind == "csv":
        named = root / "list.csv"
        named.write_text("images/a.png,x\n../elsewhere/secret.png,y\n")
        read = lambda: read_csv(named)  # noqa: E731
    else:  # a folder link inside (the user's), climbed back out of with `..`
        (root / "linked").symlink_to(secret.parent.parent / "elsewhere", target_is_directory=True)
        (secret.parent / "deeper").mkdir()
        named = root / "list.csv"
        named.write_text("images/a.png,x\nlinked/deeper/../../elsewhere/secret.png,y\n")
        read = lambda: read_csv(named)  # noqa: E731
    with pytest.raises(RecogError) as exc:
        read()
    message = one_line_naming(exc, named)
    assert "outside the dataset folder" in message


def test_converted_sets_read_back_wherever_they_are_written(tmp_path):
    from recog.data.formats.convert import convert_detection
    from recog.data.formats.detection import read_detection

    root = _voc_set(tmp_path / "voc", 2, truncated=set())
    coco = convert_detection(root, to="coco", out=tmp_path / "far" / "away" / "c.json")
    back = read_detection(coco)
    assert [r.path.parent for r in back.records] == [coco.parent / "images"] * 2
    assert not any(r.path.is_symlink() for r in back.records)
    yolo = convert_detection(coco, to="yolo", out=tmp_path / "yolo")
    assert read_detection(yolo).num_boxes == 2


# ------------------------------------------------------------------- 5. mask classes
def _mask_set(root: Path, masks: list[np.ndarray], *, suffix: str = ".png") -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, mask in enumerate(masks):
        Image.new("RGB", (mask.shape[1], mask.shape[0])).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}{suffix}", format="PNG")
    return root


def test_mask_classes_are_inferred_only_from_a_contiguous_range(tmp_path):
    ids = [np.full((8, 8), k % 3, np.uint8) for k in range(4)]
    ids[0][0, 0] = 255  # ignore is not a class
    splits = load_segmentation(str(_mask_set(tmp_path / "ok", ids)), instance=False, img_size=8)
    assert splits.class_names == ["class_0", "class_1", "class_2"]
    stray = [m.copy() for m in ids]
    stray[2][3, 3] = 200
    root = _mask_set(tmp_path / "stray", stray)
    with pytest.raises(RecogError) as exc:
        load_segmentation(str(root), instance=False, img_size=8)
    message = one_line_naming(exc, root)
    assert "mask values 200" in message and "2.png" in message and "--classes" in message
    (root / "classes.txt").write_text("bg\na\nb\n")  # the classes given: 200 is an error
    splits = load_segmentation(str(root), instance=False, img_size=8)
    assert splits.class_names == ["bg", "a", "b"]
    with pytest.raises(RecogError, match=r"2\.png: mask value 200 is not a class id"):
        [ds[i] for ds in (splits.train, splits.val) for i in range(len(ds))]


def test_jpeg_masks_are_refused(tmp_path):
    ids = [np.full((8, 8), k % 2, np.uint8) for k in range(3)]
    root = _mask_set(tmp_path / "jpg", ids, suffix=".jpg")
    with pytest.raises(RecogError, match=r"0\.jpg: a JPEG mask: lossy"):
        load_segmentation(str(root), instance=False, img_size=8)
    sneaky = _mask_set(tmp_path / "sneaky", ids)
    Image.fromarray(ids[0] * 255).save(sneaky / "masks" / "0.png", format="JPEG")
    with pytest.raises(RecogError, match=r"0\.png: a JPEG mask: lossy"):
        load_segmentation(str(sneaky), instance=False, img_size=8)


# ------------------------------------------------------- 6. numbers and nesting from files
def _coco_text(tmp_path: Path, bbox: str) -> Path:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    path = tmp_path / "c.json"
    path.write_text(
        '{"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "x"}],'
        f' "annotations": [{{"id": 1, "image_id": 1, "category_id": 1, "bbox": {bbox}}}]}}'
    )
    return path


@pytest.mark.parametrize(
    ("bbox", "says"),
    [
        ("[" + "9" * 400 + ", 0, 1, 1]", "too large a number"),
        ("[" + "9" * 5000 + ", 0, 1, 1]", "unreadable JSON"),  # past Python's int-string limit
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_coco_numbers_and_nesting_give_one_line(tmp_path, bbox, says):
    from recog.data.formats.coco import read_coco

    path = _coco_text(tmp_path, bbox)
    with pytest.raises(RecogError) as exc:
        read_coco(path)
    message = one_line_naming(exc, path)
    assert says in message and len(message) < 300


def test_yaml_nesting_and_huge_ints_give_one_line(tmp_path):
    from recog.data.formats.yolo import read_yolo

    (tmp_path / "labels").mkdir()
    for text in ("names: " + "[" * 10_000 + "]" * 10_000, "names: {" + "1" * 5000 + ": a}"):
        (tmp_path / "data.yaml").write_text(text + "\n")
        with pytest.raises(RecogError) as exc:
            read_yolo(tmp_path)
        one_line_naming(exc, tmp_path / "data.yaml")


def test_sixteen_bit_mask_value_is_one_problem_line_in_data_check(tmp_path):
    from recog.data.check import mask_report

    masks = [np.zeros((8, 8), np.uint16) for _ in range(3)]
    masks[1][2, 2] = 60_000
    root = _mask_set(tmp_path / "m16", masks)
    (problem,) = mask_report(root)["problems"]
    assert "60000" in problem and "1.png" in problem and "\n" not in problem
    problems = mask_report(root, classes="bg,fg")["problems"]
    assert problems == [f"{root / 'masks' / '1.png'}: mask value 60000 is not a class id "
                        "(classes 0..1, 255 = ignore)"]  # fmt: skip


def test_file_names_no_file_system_takes_are_one_line(tmp_path):
    """Found by tests/fuzz: a 400-digit `train:` entry made Path.exists() raise ENAMETOOLONG."""
    from recog.data.formats.yolo import read_yolo

    (tmp_path / "labels").mkdir()
    (tmp_path / "data.yaml").write_text(f"train: {'1' * 400}\nnames: [x]\n")
    with pytest.raises(RecogError) as exc:
        read_yolo(tmp_path)
    assert "File name too long" in one_line_naming(exc, tmp_path / "data.yaml")


def test_an_image_whose_header_is_needed_and_unreadable_is_skipped_not_the_set(tmp_path):
    """Found by tests/fuzz: YOLO reads every image's size, and one bad header refused the set."""
    from recog.data.formats.yolo import read_yolo

    (tmp_path / "labels").mkdir()
    for name in ("a", "b"):
        _noise_jpeg(tmp_path / "images" / f"{name}.jpg")
        (tmp_path / "labels" / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "images" / "b.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "data.yaml").write_text("names: [x]\n")
    ann = read_yolo(tmp_path)
    assert [r.path.name for r in ann.records] == ["a.jpg"]
    assert any("b.jpg" in w and "skipped" in w for w in ann.warnings)


def test_a_large_real_photo_passes_the_disk_door(tmp_path):
    """48 MP (a phone's full-resolution photo) is over the server's upload cap, not the disk's."""
    path = tmp_path / "phone.png"
    path.write_bytes(png_header(8_000, 6_000))
    assert image_size(path) == (8_000, 6_000)
