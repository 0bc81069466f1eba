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


def append_results(script: str, head: str, setup: str, table: str, verdict: list[str]) -> Path:
    """Append one run's results to bench/README.md: a dated section, the header, the table."""
    import datetime as dt

    readme = REPO / "bench" / "README.md"
    section = [
        "",
        f"### {script} ({dt.date.today().isoformat()})",
        "",
        "```",
        head,
        setup,
        "```",
        "",
        table,
        "",
        *verdict,
        "",
    ]
    with open(readme, "a", encoding="utf-8") as f:
        f.write("\n".join(section))
    return readme
