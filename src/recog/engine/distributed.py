"""Process-group context for DistributedDataParallel training.

`recog train` run under `torchrun` sees WORLD_SIZE > 1 in its environment
and joins a process group (gloo on CPU, NCCL on CUDA).  The context is an
explicit object handed to the engine (no global rank): `is_main` decides who
writes files, `gather` brings every rank's evaluation accumulator together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from recog.errors import RecogError


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def devices() -> list[str]:
    """The devices this machine has, as `--device` names them."""
    cuda = (
        [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return ["cpu", *cuda, *(["mps"] if _mps() else [])]


def pick_device(preference: str = "auto") -> torch.device:
    """The device `preference` names (auto: cuda, then mps, then cpu), or a RecogError
    naming the devices this machine has (issue 33: `--device cuda` without a GPU failed
    deep inside torch, after the run directory was written)."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if _mps() else "cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        device = None
    have = devices()
    known = device is not None and (
        device.type == "cpu" or str(device) in have or f"{device}:0" in have
    )
    if not known:
        raise RecogError(
            f"--device {preference}: not a device of this machine, which has "
            f"{', '.join(have)} (or auto)"
        )
    return device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, device: str = "auto") -> DistContext:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls(device=pick_device(device))
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = pick_device(device)
        if dev.type == "cuda":
            dev = torch.device("cuda", local)
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        return cls(rank=rank, world_size=world, local_rank=local, device=dev)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
