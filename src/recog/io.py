"""Atomic file writes and weight I/O that never unpickles: the bottom layer.

Every write goes to a temporary file in the same directory and is renamed
into place, so a crash never leaves a partial file behind.  The temporary
file is created with mode 0o666 and the process umask applied by the OS
(no module reads the umask by setting it, which would change process-wide
state).

- `save_weights` / `load_weights`: safetensors (metadata holds the format
  version and the model name).
- `save_checkpoint` / `load_checkpoint`: `torch.save`, read back only with
  `weights_only=True`, so a hostile file cannot run code.

A write that fails (a full disk, a permission) is a `RecogError` naming the
file and the OS's reason; the temporary file is removed and the old file is
untouched.  A process killed mid-write leaves its `.NAME.XXXXXXXX.tmp`
behind; `remove_stale_temps` clears them when the next run starts in that
directory.  Both serializers write through Python file objects
(`_FullWrites`), so the OS's error reaches us as the OSError it is, not as
torch's "unexpected pos" or safetensors' serialization error.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from recog.errors import RecogError

FORMAT_VERSION = "1"

#: the temporary files `atomic_write` creates (`.last.ckpt.1a2b3c4d.tmp`)
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it into place.

    An OSError while writing or renaming (ENOSPC, EACCES, EROFS) is a
    `RecogError` naming `path`; the temporary file never survives a failure.
    """
    path = Path(path)
    try:
        _atomic_write(path, write)
    except OSError as exc:
        raise RecogError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temps(directory: Path) -> list[Path]:
    """Delete the temporary files an interrupted `atomic_write` left in `directory`."""
    removed = []
    for entry in Path(directory).glob(".*.tmp"):
        if _TEMP_NAME.match(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


class _FullWrites:
    """A raw file whose `write` writes everything or raises (a raw write may write part).

    torch's zip writer turns an exception of `write` into a RuntimeError
    ("unexpected pos"); `error` keeps the OSError so the caller can raise it.
    """

    def __init__(self, path: str) -> None:
        self.fh = open(path, "wb", buffering=0)  # noqa: SIM115 - closed by __exit__
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += self.fh.write(view[done:]) or 0
        except OSError as exc:
            self.error = exc
            raise
        return done

    def flush(self) -> None:
        pass

    def __enter__(self) -> _FullWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def _write_all(tmp: str, data: bytes) -> None:
    with _FullWrites(tmp) as fh:
        fh.write(data)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: _write_all(tmp, data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Contiguous, de-aliased tensors to safetensors (tied weights are copied)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    meta = {"format_version": FORMAT_VERSION, **metadata}
    atomic_write(path, lambda tmp: _write_all(tmp, safetensors_bytes(tensors, metadata=meta)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RecogError(f"{path}: not a readable safetensors file ({exc})") from exc


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    def write(tmp: str) -> None:
        with _FullWrites(tmp) as fh:
            try:
                torch.save(state, fh)  # type: ignore[arg-type]
            except RuntimeError:
                if fh.error is not None:
                    raise fh.error from None
                raise

    atomic_write(path, write)


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise RecogError(f"{path}: no checkpoint to resume from") from exc
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise RecogError(
            f"{path}: not a loadable recog checkpoint ({exc.__class__.__name__})"
        ) from exc


def read_json(path: Path) -> Any:
    """A run file's JSON; unreadable or malformed is one RecogError naming the file."""
    import json

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecogError(f"{path}: not readable JSON ({exc})") from None
