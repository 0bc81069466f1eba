"""Where recog may write: an output never is, lies inside, or contains what it reads.

One rule for every command that writes beside the user's files (`predict --save-dir`
and `--out`, `train --out`, `data convert|split`, `data doctor --fix`): both paths are
resolved (`..` and symbolic links followed), so a link or a relative spelling cannot
slip an output into an input.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from recog.errors import RecogError


def overlap(out: Path | str, source: Path | str) -> str | None:
    """How `out` meets `source`: "is", "lies inside", "contains", or None when apart."""
    a, b = Path(out).resolve(), Path(source).resolve()
    if a == b:
        return "is"
    if a.is_relative_to(b):
        return "lies inside"
    if b.is_relative_to(a):
        return "contains"
    return None


def refuse_overlap(out: Path | str, sources: Iterable[Path | str], *, flag: str) -> None:
    """A RecogError naming `flag` and `out` when it is, lies inside or contains any of `sources`."""
    for source in sources:
        how = overlap(out, source)
        if how is not None:
            raise RecogError(
                f"{flag} {out}: {how} the input {source}; recog never writes over what it "
                f"reads; write it elsewhere"
            )
