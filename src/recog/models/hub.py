"""Pretrained files in the local Hugging Face and torch hub caches: where one would be, and whether it is.

`TorchHubFile` and `HubFile` locate the file torchvision, timm or
segmentation_models_pytorch would have downloaded (the records of
`recog.models.cached` hold one each).  recog never downloads: the file is looked up in the local cache
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from recog.errors import RecogError

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


@dataclass(frozen=True)
class TorchHubFile:
    """A file in torch's hub cache (`TORCH_HOME/hub/checkpoints`, read at the call), under the
    name its download URL ends in: where torchvision's `weights=` and older timm weights go."""

    url: str
    #: the `--weights` value that looks it up, for the one-line error
    kind: str

    def expected(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / self.url.rsplit("/", 1)[-1]

    def path(self) -> Path:
        path = self.expected()
        if not path.is_file():
            raise RecogError(
                f"--weights {self.kind}: {path} is not in the local torch cache and recog never "
                f"downloads; copy {self.url} there or pass its path"
            )
        return path

    def where(self) -> str:
        return f"{self.kind} cache"


@dataclass(frozen=True)
class HubFile:
    """The first of `files` of a Hugging Face repository in the local cache (`revision`, else
    the cache's `refs/main`): where timm's and smp's weights go."""

    repo_id: str
    kind: str
    files: tuple[str, ...] = _FILES
    revision: str | None = None

    def expected(self) -> Path:
        folder = hf_cache_dir() / f"models--{self.repo_id.replace('/', '--')}"
        return folder / "snapshots" / (self.revision or "<commit>") / self.files[0]

    def path(self) -> Path:
        return cached_hub_file(
            self.repo_id, flag=f"--weights {self.kind}", revision=self.revision, files=self.files
        )

    def where(self) -> str:
        return f"{self.kind} cache"
