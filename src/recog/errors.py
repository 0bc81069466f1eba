"""User-facing errors.

A `RecogError` is a mistake in what the user gave us (a path, a file, a
name).  The CLI prints its message on one line and exits non-zero, with no
traceback; anything else that escapes is a bug in recog.
"""

from __future__ import annotations


class RecogError(Exception):
    """A user mistake with a one-line explanation that names the file or value."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
