"""Reading a weights file safely: safetensors, or a torch state dict read with `weights_only=True` (unwrapped from a training checkpoint, prefixes of a wrapper stripped)."""

from __future__ import annotations

from pathlib import Path

import torch

from recog.errors import RecogError
from recog.io import load_weights

_WRAPPER_KEYS = ("state_dict", "model", "model_state", "module", "ema")
_PREFIXES = ("module.", "model.", "_orig_mod.")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file or a (possibly wrapped) torch state dict."""
    path = Path(path)
    if not path.is_file():
        raise RecogError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        state = load_weights(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - anything unreadable is a bad file
            raise RecogError(
                f"{path}: not a safetensors file or a torch state dict ({exc.__class__.__name__})"
            ) from exc
        for key in _WRAPPER_KEYS:
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RecogError(f"{path}: holds no state dict of tensors")
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state
