"""Pretrained files in the local Hugging Face and torch hub caches: where one would be, and whether it is.

`--weights timm` and `--weights smp` name the file timm or
segmentation_models_pytorch would have downloaded for a model (or its
encoder).  recog never downloads: the file is looked up in the local cache
with `huggingface_hub.try_to_load_from_cache`, which reads the cache's folders
and opens no connection, and `HF_HUB_OFFLINE=1` is set while it runs so no
code under it may reach the hub either.  The cache is the one
huggingface_hub uses, read from the environment at the call (not at import):
`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.  Older timm
weights that live only at a URL are looked up in torch's hub cache
(`TORCH_HOME/hub/checkpoints`), as `--weights torchvision` does.

When the file is absent the error is one line naming the repository, the
file and the exact folder to put it in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from recog.errors import RecogError

#: the `--weights` values looked up in the local hub caches
HUB_SOURCES = ("timm", "smp")
#: what timm's and smp's hub repositories hold, in the order timm tries them
_FILES = ("model.safetensors", "pytorch_model.bin")


def hf_cache_dir() -> Path:
    """huggingface_hub's cache folder as the environment sets it now."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


@contextmanager
def _offline() -> Iterator[None]:
    old = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old


def cached_hub_file(
    repo_id: str, *, flag: str, revision: str | None = None, files: tuple[str, ...] = _FILES
) -> Path:
    """The first of `files` of `repo_id` (at `revision`, default the cache's `main`) in the
    local Hugging Face cache, or a RecogError saying where to put it."""
    from huggingface_hub import try_to_load_from_cache

    cache = hf_cache_dir()
    with _offline():
        for name in files:
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache, revision=revision)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = revision or "<commit>"
    refs = "" if revision else f", with {folder}/refs/main holding <commit>"
    raise RecogError(
        f"{flag}: {files[0]} of https://huggingface.co/{repo_id} is not in the local "
        f"Hugging Face cache and recog never downloads; put it at "
        f"{folder}/snapshots/{snapshot}/{files[0]}{refs} "
        f"(`hf download {repo_id} {files[0]}` on a machine with network, then copy {cache})"
    )


def timm_file(arch: str, *, flag: str = "--weights timm") -> Path:
    """The file timm's `pretrained=True` would load for architecture `arch` (its default tag)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _FILES
        return cached_hub_file(cfg.hf_hub_id, flag=flag, files=files)
    if cfg is not None and cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / cfg.url.rsplit("/", 1)[-1]
        if path.is_file():
            return path
        raise RecogError(
            f"{flag}: {path} is not in the local torch cache and recog never downloads; "
            f"copy {cfg.url} there or pass its path"
        )
    raise RecogError(f"{flag}: timm has no pretrained weights for {arch}")


def timm_weights(arch: str) -> Callable[[str, Mapping[str, Any]], Path]:
    """A `ModelSpec.hub_weights` for a model built as timm's `arch` (or on it as a backbone)."""

    def find(source: str, model_args: Mapping[str, Any]) -> Path:
        if source != "timm":
            raise RecogError(f"--weights {source}: {arch} is built by timm; use --weights timm")
        return timm_file(arch)

    return find


def smp_file(encoder: str, weights: str = "imagenet") -> Path:
    """The file segmentation_models_pytorch's `encoder_weights=weights` would load for `encoder`."""
    if encoder.startswith("tu-"):  # smp's timm encoders take timm's own weights
        return timm_file(encoder[3:], flag="--weights smp")
    from segmentation_models_pytorch.encoders import encoders

    settings = encoders.get(encoder, {}).get("pretrained_settings", {})
    if weights not in settings:
        known = ", ".join(settings) or "none"
        raise RecogError(
            f"--weights smp: encoder {encoder} has no {weights!r} weights in smp (it has: {known})"
        )
    repo, revision = settings[weights]["repo_id"], settings[weights].get("revision")
    return cached_hub_file(repo, flag="--weights smp", revision=revision, files=_FILES[:1])
