"""Image-level findings every task shares: unreadable files, odd sizes and shapes, colour modes.

The limits are the ones a photo dataset meets (docs/doctor.md): a side under
`TINY_SIDE` px carries little to learn from, more than `HUGE_PIXELS` pixels
costs decoding time for nothing at the sizes recog trains at, an aspect ratio
past `ODD_ASPECT` is a strip or a panorama that a square crop mostly drops.
Colour modes: a set that mixes greyscale, CMYK, palette or alpha images with
RGB ones is reported by mode with its count (the loaders convert them all to
RGB, so it is a warning about the data, not an error); a set all of one mode
is not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from recog.data.inventory import Entry, Finding
from recog.doctor.scan import Scan

TINY_SIDE = 32
HUGE_PIXELS = 40_000_000
ODD_ASPECT = 4.0
#: modes that decode straight to RGB; the others are reported when the set mixes them in
_RGB_MODES = {"RGB"}


def image_findings(entries: Sequence[Entry], scans: Sequence[Scan]) -> list[Finding]:
    out: list[Finding] = []
    modes: Counter[str] = Counter()
    for e, s in zip(entries, scans, strict=True):
        name = str(e.path)
        if s.problem:
            out.append(Finding("unreadable", [name], f"{name}: {s.problem}", e.split))
            continue
        modes[s.mode] += 1
        w, h = s.width, s.height
        if min(w, h) < TINY_SIDE:
            out.append(
                Finding(
                    "image-tiny", [name], f"{name}: {w}x{h} px, a side under {TINY_SIDE}", e.split
                )
            )
        if w * h > HUGE_PIXELS:
            out.append(
                Finding("image-huge", [name], f"{name}: {w}x{h} px ({w * h / 1e6:.0f} MP)", e.split)
            )
        if max(w, h) > ODD_ASPECT * min(w, h):
            out.append(
                Finding(
                    "image-aspect",
                    [name],
                    f"{name}: {w}x{h} px, aspect {max(w, h) / max(1, min(w, h)):.1f}:1",
                    e.split,
                )
            )
    if len(modes) > 1:
        main = modes.most_common(1)[0][0]
        for e, s in zip(entries, scans, strict=True):
            if not s.problem and s.mode != main and s.mode not in _RGB_MODES | {main}:
                name = str(e.path)
                out.append(
                    Finding(
                        "image-mode",
                        [name],
                        f"{name}: colour mode {s.mode} in a set of mostly {main} "
                        f"({', '.join(f'{m} {n}' for m, n in modes.most_common())})",
                        e.split,
                        detail={"mode": s.mode},
                    )
                )
    return out
