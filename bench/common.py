"""Shared bench helpers: the header every benchmark prints (machine, versions, seed)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def header(title: str, *, seed: int) -> str:
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        f"# {title}",
        f"machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
        f"python {platform.python_version()}, torch {torch.__version__}, torchvision {torchvision.__version__}",
        f"seed: {seed}",
    ]
    return "\n".join(lines)
