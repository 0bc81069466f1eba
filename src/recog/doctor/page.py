"""`doctor.json` and `doctor.html`: the findings, their counts and their estimated effect.

The page is one self-contained HTML file (thumbnails inlined as base64
JPEGs, no script, no fetch): a summary of counts and effects ("3 val images
have a duplicate in train"), then one section per kind, leaks first, each
finding with its thumbnails (a pair side by side for duplicates; the given
and the suggested label for label errors; the box drawn for box findings)
and its one line.  A section shows at most `SHOWN` findings; the JSON holds
them all.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from recog.data.inventory import Finding
from recog.io import atomic_write_text

SHOWN = 60

#: the order of the page's sections, and each kind's heading
KINDS: dict[str, str] = {
    "leak-exact": "Exact duplicates across train/val (leakage)",
    "leak-near": "Near duplicates across train/val (leakage)",
    "duplicate-exact": "Exact duplicates within a split",
    "duplicate-near": "Near duplicates within a split",
    "label-error": "Likely label errors",
    "box-overlooked": "Objects without a box (overlooked)",
    "box-swapped": "Boxes of the wrong class (swapped)",
    "box-badly-located": "Badly located boxes",
    "mask-iou-outlier": "Masks the model disagrees with",
    "unreadable": "Unreadable files",
    "box-degenerate": "Degenerate boxes",
    "box-out-of-bounds": "Boxes outside their image",
    "box-duplicate": "One object boxed twice",
    "mask-values": "Mask values that are no class",
    "mask-size": "Masks of another size than their image",
    "unannotated": "Images without annotations",
    "class-imbalance": "Class imbalance",
    "class-empty": "Empty classes",
    "image-tiny": "Tiny images",
    "image-huge": "Huge images",
    "image-aspect": "Odd aspect ratios",
    "image-mode": "Colour modes mixed in",
}


def effects(findings: Sequence[Finding], counts: Mapping[str, int]) -> list[str]:
    """Sentences saying what the findings do to training and to the measured numbers."""
    by = Counter(f.kind for f in findings)
    out = []
    # a leak's files are (the training copy a fix drops, the val image it duplicates)
    val_leaked = {f.files[1] for f in findings if f.kind.startswith("leak") and len(f.files) > 1}
    if val_leaked:
        val = counts.get("val", 0)
        out.append(
            f"{len(val_leaked)} val image(s) have a duplicate in train"
            + (
                f" ({100 * len(val_leaked) / val:.1f}% of val): validation scores are inflated"
                if val
                else ""
            )
            + (
                # a tenth of val with near copies is sessions (frames of one video, one specimen
                # photographed twice) split across train and val, not a stray duplicate
                "; this split measures recall of near copies, not of new images: split by "
                "session with --group-by (metadata columns or a file-name pattern)"
                if val and len(val_leaked) >= 0.1 * val
                else ""
            )
        )
    dup = by["duplicate-exact"] + by["duplicate-near"]
    if dup:
        out.append(f"{dup} duplicate pair(s) within a split weigh those images twice")
    if by["label-error"]:
        train = sum(1 for f in findings if f.kind == "label-error" and f.split == "train")
        total = counts.get("train", 0) + counts.get("val", 0)
        out.append(
            f"{by['label-error']} image(s) look mislabelled ({100 * by['label-error'] / max(1, total):.1f}%"
            f" of the set; {train} in train)"
        )
    boxes = by["box-overlooked"] + by["box-swapped"] + by["box-badly-located"]
    if boxes:
        out.append(
            f"{by['box-overlooked']} object(s) without a box, {by['box-swapped']} box(es) of "
            f"another class, {by['box-badly-located']} badly located"
        )
    if by["unreadable"]:
        out.append(f"{by['unreadable']} file(s) cannot be read: training skips them")
    return out


def _thumb(data: bytes, box: Sequence[float] | None = None, size: tuple[int, int] = (0, 0)) -> str:
    if not data:
        return '<div class="nothumb">no image</div>'
    if box is not None and size[0]:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        sx, sy = img.width / size[0], img.height / size[1]
        ImageDraw.Draw(img).rectangle(
            [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], outline=(255, 40, 40), width=2
        )
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        data = buf.getvalue()
    return f'<img src="data:image/jpeg;base64,{base64.b64encode(data).decode()}">'


def _card(f: Finding, thumbs: Mapping[str, tuple[bytes, tuple[int, int]]]) -> str:
    imgs = []
    for k, name in enumerate(f.files[:2]):
        data, size = thumbs.get(name, (b"", (0, 0)))
        caption = ""
        if f.kind == "label-error":
            given, suggested = (html.escape(str(f.detail[k])) for k in ("given", "suggested"))
            caption = f"given: {given} &rarr; suggested: {suggested}"
        elif len(f.files) > 1 and f.kind.startswith(("leak", "duplicate")):
            caption = "copy (a fix drops it)" if k == 0 else "kept"
        box = f.detail.get("box") if k == 0 else None
        imgs.append(f"<figure>{_thumb(data, box, size)}<figcaption>{caption}</figcaption></figure>")
    return (
        f'<div class="card">{"".join(imgs)}<p>{html.escape(f.message)}</p>'
        f'<p class="meta">{html.escape(f.split)} &middot; score {f.score:.2f}</p></div>'
    )


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
h1{margin-bottom:0}.sub{color:#666}table{border-collapse:collapse}
td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ccc;border-radius:6px;
padding:8px;width:360px}.card figure{display:inline-block;margin:0 4px 0 0;width:170px}
.card img{max-width:170px;max-height:170px}figcaption{font-size:12px;color:#444}
.card p{font-size:13px;margin:4px 0;word-break:break-all}.meta{color:#777}
.effects li{margin:3px 0}.nothumb{width:160px;height:60px;background:#eee;color:#888}"""


def write_page(out: Path, result: Mapping[str, Any], findings: Sequence[Finding],
               thumbs: Mapping[str, tuple[bytes, tuple[int, int]]]) -> None:  # fmt: skip
    """`out/doctor.json` and `out/doctor.html` (each written atomically)."""
    record = dict(result) | {"findings": [asdict(f) for f in findings]}
    atomic_write_text(out / "doctor.json", json.dumps(record, indent=1, default=str))
    by: dict[str, list[Finding]] = {}
    for f in findings:
        by.setdefault(f.kind, []).append(f)
    rows = "".join(
        f"<tr><td>{html.escape(KINDS.get(k, k))}</td><td>{len(by.get(k, []))}</td></tr>"
        for k in KINDS
        if by.get(k)
    )
    checks = "".join(f"<li>{html.escape(line)}</li>" for line in result.get("checks", []))
    sections = []
    for kind in [*KINDS, *(k for k in by if k not in KINDS)]:
        items = by.get(kind, [])
        if not items:
            continue
        more = f"<p>{len(items) - SHOWN} more in doctor.json</p>" if len(items) > SHOWN else ""
        cards = "".join(_card(f, thumbs) for f in items[:SHOWN])
        sections.append(
            f"<h2>{html.escape(KINDS.get(kind, kind))} ({len(items)})</h2>"
            f'<div class="cards">{cards}</div>{more}'
        )
    effect = "".join(f"<li>{html.escape(e)}</li>" for e in result.get("effects", []))
    meta_rows = "".join(
        f"<tr><td>{html.escape(str(m['column']))}</td><td>{m['values']}</td>"
        f"<td>{m['val_seen']:.0%}</td><td>{m['lookup_accuracy']:.0%}</td><td>{m['chance']:.0%}</td></tr>"
        for m in result.get("metadata_leaks", [])
    )
    meta = (
        "<h2>Metadata columns that name the label</h2><table><tr><th>column</th><th>values</th>"
        "<th>val images whose value is in train</th><th>val labels a train lookup names</th>"
        f"<th>commonest class</th></tr>{meta_rows}</table>"
        if meta_rows
        else ""
    )
    counts = result.get("images", {})
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>recog data doctor: {html.escape(str(result.get("data", "")))}</title><style>{_STYLE}</style></head>
<body><h1>Data doctor</h1><p class="sub">{html.escape(str(result.get("data", "")))} &middot;
{html.escape(str(result.get("task", "")))} &middot; {counts.get("train", 0)} train, {counts.get("val", 0)} val images
&middot; {result.get("seconds", 0)} s</p>
<h2>Effect</h2><ul class="effects">{effect or "<li>nothing found that changes training or its measurement</li>"}</ul>
<h2>Findings</h2><table><tr><th>kind</th><th>count</th></tr>{rows or "<tr><td>none</td><td>0</td></tr>"}</table>
{meta}
<h2>What was checked</h2><ul>{checks}</ul>
{"".join(sections)}</body></html>"""
    atomic_write_text(out / "doctor.html", page)
