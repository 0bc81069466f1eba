"""Image sizes an annotation file records, held against the image files: `SizeCheck`.

COCO's `width`/`height` and VOC's `<size>` say what image the boxes were
drawn on.  When the file on disk is another size (a set whose images were
resized after labelling), every box lands in the wrong place and the model
trains to mAP 0 without a word, so a size that disagrees with the image's
header is an error, never quietly replaced by the real one.  The real size
is the upright one (EXIF orientation applied), as `read_image` decodes it.
A size left out (or 0, which labelling tools write when they did not know
it) is read from the image and reported as a warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recog.data.formats.records import short_repr
from recog.data.images import upright_size
from recog.errors import RecogError


def _given(value: object) -> bool:
    """Whether a recorded side says something: absent (None) and 0 mean "not known"."""
    return value is not None and not (type(value) in (int, float) and value == 0)


def _side(value: object, *, where: str, name: str) -> int:
    """A recorded side as a positive integer, else a RecogError naming the field."""
    ok = type(value) in (int, float) and value > 0 and float(value).is_integer()  # type: ignore[operator,arg-type]
    if not ok:
        raise RecogError(f"{where}: {name} {short_repr(value)} is not a positive whole number")
    return int(value)  # type: ignore[call-overload]


def _advice(recorded: tuple[int, int], real: tuple[int, int]) -> str:
    (w, h), (rw, rh) = recorded, real
    if (w, h) == (rh, rw):
        return (
            "width and height swapped: the image is turned a quarter (by its EXIF "
            "orientation, which recog applies, or by an editor) from the one the boxes "
            "were drawn on"
        )
    # the same shape to within a pixel of rounding: the images were scaled after labelling
    if abs(w * rh - h * rw) <= max(w, h, rw, rh):
        return (
            f"the same shape scaled by {rw / w:.3g}: the image was resized after labelling; "
            "scale its boxes and size to the file, or restore the original image"
        )
    return "the boxes were drawn on another image; fix the size or the image"


@dataclass
class SizeCheck:
    """The recorded sizes of one annotation set against the images' headers.

    `size` answers each image's (width, height), noting what disagrees;
    `finish` raises the mismatches as one RecogError (the first and a count)
    and returns the warnings: images that cannot be read, sizes not recorded.
    """

    mismatches: list[str] = field(default_factory=list)
    unrecorded: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    def size(
        self, width: object, height: object, image: Path, *, where: str, fields: tuple[str, str]
    ) -> tuple[int, int] | None:
        """(width, height) of `image`; `where` names the record, `fields` its size fields.

        An image whose header cannot be read keeps its recorded size (the loaders
        screen every image and leave it out, listing it); with none recorded, the
        answer is None and the caller skips it, as a missing one.

        A recorded side that is no positive whole number is a RecogError at once.
        """
        given = _given(width) or _given(height)
        recorded = (
            (_side(width, where=where, name=fields[0]), _side(height, where=where, name=fields[1]))
            if given
            else None
        )
        try:
            real = upright_size(image)
        except RecogError as exc:
            if recorded is not None:  # the loaders' screen of every image leaves it out
                return recorded
            self.unreadable.append(f"{exc}; skipped")
            return None
        if recorded is None:
            self.unrecorded.append(f"{where}: no {fields[0]} or {fields[1]} (or 0)")
        elif recorded != real:
            self.mismatches.append(
                f"{where}: {fields[0]} x {fields[1]} say {recorded[0]}x{recorded[1]} but "
                f"{image} is {real[0]}x{real[1]} ({_advice(recorded, real)})"
            )
        return real

    def finish(self) -> list[str]:
        """Raises on any mismatch; else the warning lines (unreadable images, sizes read
        from the images)."""
        if self.mismatches:
            more = len(self.mismatches) - 1
            raise RecogError(
                self.mismatches[0] + (f"; and {more} more image(s) like it" if more else "")
            )
        lines = list(self.unreadable)
        if self.unrecorded:
            more = len(self.unrecorded) - 1
            lines.append(
                f"{self.unrecorded[0]}; the size is read from the image"
                + (f" (and {more} more like it)" if more else "")
            )
        return lines
