"""RNG states for `last.ckpt`, as tensors and plain values (loadable with weights_only=True).

`last.ckpt` holds everything to resume exactly (model, optimizer, scheduler,
scaler, EMA, these RNG states, epoch, best score); it is written and read by
`recog.io` (atomic, never unpickled).  `restore` puts a loaded one back into
a run's objects, or says in one line (a `RecogError`) what in the file does
not fit: another model's weights, a missing part, a foreign file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recog.errors import RecogError

#: the parts every `last.ckpt` holds (and "ema" when the run keeps one)
REQUIRED = ("model", "optimizer", "scheduler", "scaler", "state", "rng")


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain values only (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            kind,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def restore(
    path: Path,
    saved: Any,
    parts: dict[str, Any],
    *,
    state: dict[str, Any],
    model_name: str,
    epochs: int | None = None,
    steps: int | None = None,
) -> None:
    """Load `saved` (a `last.ckpt`) into `parts` (name -> object with `load_state_dict`),
    `state` (the loop's counters) and the RNGs; a RecogError naming `path` and what does not match.

    `epochs` and `steps` (optimizer steps in all) are the run's budget: the counters saved
    must lie within it (`check_counters`)."""
    check(path, saved, model=parts["model"], model_name=model_name, epochs=epochs, steps=steps,
          state=state)  # fmt: skip
    for name, obj in parts.items():
        if name not in saved:  # an EMA added on resume starts from the model
            continue
        try:
            obj.load_state_dict(saved[name])
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecogError(f"{path}: its {name} state does not fit this run ({first})") from exc
    state.update(saved["state"])
    try:
        set_rng_state(saved["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise RecogError(f"{path}: its RNG states are not recog's ({type(exc).__name__})") from exc


def check(
    path: Path, saved: Any, *, model: Any, model_name: str, epochs: int | None = None,
    steps: int | None = None, state: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """What `restore` checks before it changes anything, a RecogError naming `path`: its
    parts, its weights' names and shapes against `model`, the names of its counters against
    the loop's `state` (None: not checked) and their values (`check_counters`).  A resume
    calls it before it writes anything in the run."""
    if not isinstance(saved, dict):
        raise RecogError(f"{path}: not a recog training checkpoint (a {type(saved).__name__})")
    missing = [key for key in REQUIRED if key not in saved]
    if missing:
        raise RecogError(
            f"{path}: not a recog training checkpoint (no {', '.join(map(repr, missing))})"
        )
    if isinstance(model, nn.Module):
        mismatch = _weights_mismatch(saved["model"], model.state_dict())
        if mismatch:
            raise RecogError(f"{path}: not a checkpoint of this run's {model_name} ({mismatch})")
    if not isinstance(saved["state"], dict):
        raise RecogError(
            f"{path}: its training state is not recog's (a {type(saved['state']).__name__})"
        )
    unknown = set(saved["state"]) - set(state) if state is not None else set()
    if unknown:
        raise RecogError(f"{path}: its training state is not recog's ({sorted(unknown)[0]!r})")
    check_counters(path, saved, epochs=epochs, steps=steps)


#: what each of the loop's counters holds (`recog.engine.trainer._State`, and the
#: budget's "seconds", `recog.engine.budget.Budget.state_dict`)
KINDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "best_epoch": (int,),
    "bad_epochs": (int,),
    "best": (int, float),
    "seconds": (int, float),
    "first_loss": (int, float, type(None)),  # None until the run's first step
    "best_metrics": (dict,),
    "best_extra": (dict,),
}


def check_counters(
    path: Path, saved: dict[str, Any], *, epochs: int | None, steps: int | None
) -> None:
    """The loop's counters in `saved` are of their kind and within the run's budget, or a
    RecogError naming `path` and the field: a negative or huge epoch, or a scheduler step
    far past the run's, trained until killed (issue 33)."""
    counters = saved["state"]
    for key, value in counters.items():
        kinds = KINDS.get(key, (object,))
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise RecogError(f"{path}: its {key} is not what recog saves there ({value!r:.60})")
        if isinstance(value, float) and value != value:
            raise RecogError(f"{path}: its {key} is NaN")
    epoch = counters.get("epoch", 0)
    _within(path, "epoch", epoch, 0, epochs, "the run's epochs")
    _within(path, "best_epoch", counters.get("best_epoch", -1), -1, epoch, "its epoch")
    _within(path, "bad_epochs", counters.get("bad_epochs", 0), 0, epoch, "its epoch")
    if not 0 <= counters.get("seconds", 0.0) < float("inf"):
        raise RecogError(f"{path}: its seconds is not a time ({counters['seconds']!r})")
    scheduler = saved["scheduler"] if isinstance(saved["scheduler"], dict) else {}
    for key in ("last_epoch", "_step_count"):
        if key in scheduler:
            value = scheduler[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise RecogError(f"{path}: its scheduler {key} is not a whole number ({value!r})")
            _within(path, f"scheduler {key}", value, 0, None if steps is None else steps + 1,
                    "the run's optimizer steps")  # fmt: skip


def _within(path: Path, name: str, value: int, low: int, high: int | None, what: str) -> None:
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high} ({what})" if high is not None else f"at least {low}"
        raise RecogError(f"{path}: its {name} {value} is not {bound}")


def _weights_mismatch(saved: Any, expected: dict[str, torch.Tensor]) -> str:
    """The first difference between two state dicts' keys and shapes, or ""."""
    if not isinstance(saved, dict):
        return f"its weights are a {type(saved).__name__}, not a state dict"
    extra = [k for k in saved if k not in expected]
    absent = [k for k in expected if k not in saved]
    if absent:
        return f"missing weight {_first(absent)}"
    if extra:
        return f"unexpected weight {_first(extra)}"
    for key, tensor in expected.items():
        value = saved[key]
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else None
        if shape != tuple(tensor.shape):
            return f"{key!r} has shape {shape}, the model's is {tuple(tensor.shape)}"
    return ""


def _first(keys: list[str]) -> str:
    return repr(keys[0]) + (f" and {len(keys) - 1} more" if len(keys) > 1 else "")
