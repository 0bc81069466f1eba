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
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from recog.errors import RecogError

FORMAT_VERSION = "1"


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary path beside `path`, then rename it into place."""
    path = Path(path)
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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def save_weights(path: Path, state_dict: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Contiguous, de-aliased tensors to safetensors (tied weights are copied)."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    meta = {"format_version": FORMAT_VERSION, **metadata}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RecogError(f"{path}: not a readable safetensors file ({exc})") from exc


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise RecogError(f"{path}: no checkpoint to resume from") from exc
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise RecogError(
            f"{path}: not a loadable recog checkpoint ({exc.__class__.__name__})"
        ) from exc
