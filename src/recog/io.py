"""Atomic file writes and weight I/O that never unpickles: the bottom layer.

Every write goes to a temporary file in the same directory and is renamed
into place, so a crash never leaves a partial file behind.  The temporary
file is created with mode 0o666 and the process umask applied by the OS
(no module reads the umask by setting it, which would change process-wide
state).

- `save_weights` / `load_weights` / `read_weights`: safetensors (metadata holds
  the format version and the model name); a tensor holding NaN or inf is refused.
- `save_checkpoint` / `load_checkpoint`: `torch.save`, read back only with
  `weights_only=True`, so a hostile file cannot run code; NaN or inf refused too.
- `read_json`: a run's JSON files, size-capped, one line for anything malformed.

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
from safetensors import SafetensorError, safe_open
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
    return read_weights(path)[0]


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and metadata; every tensor finite, or a RecogError naming it.

    Every weight recog loads comes through here (a run's model, a pretrained start, an OOD
    bank), so a file holding NaN or inf is refused once for all of them: such a model
    answers NaN scores that look like predictions (issue 33)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RecogError(f"{path}: not a readable safetensors file ({first})") from exc
    bad = _first_not_finite(tensors)
    if bad:
        raise RecogError(f"{path}: tensor {bad!r} is not finite (NaN or inf)")
    return tensors, metadata


def _first_not_finite(value: Any, name: str = "") -> str:
    """The name (`model/fc.weight`) of the first floating tensor in `value`, a tensor or
    nested dicts, lists and tuples of them, that holds NaN or inf; "" when none does."""
    if isinstance(value, torch.Tensor):
        finite = not value.is_floating_point() or bool(torch.isfinite(value).all())
        return "" if finite else name
    if isinstance(value, dict):
        items = [(f"{name}/{key}" if name else str(key), v) for key, v in value.items()]
    elif isinstance(value, list | tuple):
        items = [(f"{name}/{i}" if name else str(i), v) for i, v in enumerate(value)]
    else:
        return ""
    for child, v in items:
        bad = _first_not_finite(v, child)
        if bad:
            return bad
    return ""


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
    """`last.ckpt` read with weights_only=True (nothing unpickled runs code); every tensor
    in it finite, or a RecogError naming it (NaN weights or optimizer moments resume a run
    that can only answer NaN)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise RecogError(f"{path}: no checkpoint to resume from") from exc
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise RecogError(
            f"{path}: not a loadable recog checkpoint ({exc.__class__.__name__})"
        ) from exc
    bad = _first_not_finite(saved)
    if bad:
        raise RecogError(f"{path}: tensor {bad!r} is not finite (NaN or inf)")
    return saved


#: the largest JSON file a run holds that recog reads: labels.json for 100,000 classes
#: (ImageNet-21k has 21,841) at 100 bytes a name is 10 MB; metrics.json and export.json
#: are a few kB.  Past this, a file is refused before it is read into memory.
MAX_JSON_BYTES = 16 * 1024 * 1024


def read_json(path: Path) -> Any:
    """A run file's JSON, read as at most `MAX_JSON_BYTES` bytes of UTF-8; unreadable,
    too large, binary, malformed or too deeply nested is one RecogError naming the file."""
    import json

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise RecogError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_JSON_BYTES:
        raise RecogError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MB, not a run's JSON")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecogError(f"{path}: not a text file (its bytes are not UTF-8)") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise RecogError(f"{path}: not readable JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RecogError(f"{path}: not readable JSON ({first})") from None
