"""A shared machine: training throughput with the cores to itself and with one core busy.

Issue 34: a 2-thread run beside one busy process trained 14x slower than with
one thread.  The cause is OpenMP's wait policy: between parallel regions
libgomp's threads spin (by default for about 300,000 iterations) before they
sleep, so a thread whose core is taken by another process holds up every
barrier while its partner spins for the whole of that time slice.  With
`OMP_WAIT_POLICY=PASSIVE` a waiting thread sleeps at once and yields its core.
recog sets it (unless the environment already says otherwise) when it is
imported before torch (`recog/__init__.py`).

Each cell trains resnet18 (96 px, batch 16, SGD) in a fresh process for
`--seconds`, alone and beside a busy process (`while True: pass`), with
OpenMP's default wait policy and with PASSIVE; the peer is the default
policy (what torch does on its own).

    .venv/bin/python bench/shared_cores.py [--seconds 8] [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import append_results, header  # noqa: E402

SEED = 0
STEPS = """
import sys, time, torch, torchvision
torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[1]))
m = torchvision.models.resnet18(num_classes=10).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(m.parameters(), lr=0.01)
x = torch.randn(16, 3, 96, 96).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (16,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
step()
t, n = time.perf_counter(), 0
while time.perf_counter() - t < float(sys.argv[2]):
    step(); n += 1
print(16 * n / (time.perf_counter() - t))
"""


def images_per_second(threads: int, policy: str | None, seconds: float) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", STEPS, str(threads), str(seconds)], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    return float(out.stdout.strip())


def cell(threads: int, policy: str | None, seconds: float, busy: bool) -> float:
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        return images_per_second(threads, policy, seconds)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="print only (no bench/README.md)")
    args = parser.parse_args()
    head = header("shared_cores.py: OpenMP wait policy on a shared machine", seed=SEED)
    print(head, flush=True)
    rows = []
    for label, threads, policy in (("1 thread", 1, None), ("2 threads, default (spin)", 2, None),
                                   ("2 threads, PASSIVE (recog)", 2, "PASSIVE")):  # fmt: skip
        alone = cell(threads, policy, args.seconds, busy=False)
        shared = cell(threads, policy, args.seconds, busy=True)
        rows.append((label, alone, shared))
        print(f"{label}: {alone:.1f} img/s alone, {shared:.1f} beside a busy core", flush=True)
    lines = ["| threads, wait policy | img/s alone | img/s beside a busy process | shared / alone |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    lines += [f"| {n} | {a:.1f} | {s:.1f} | {s / a:.2f} |" for n, a, s in rows]
    text = "\n".join(lines)
    print(text)
    default, passive = rows[1], rows[2]
    verdict = [
        f"beside a busy core PASSIVE trains {passive[2] / default[2]:.2f}x the default's images/s; "
        f"alone {passive[1] / default[1]:.2f}x"
    ]
    print(verdict[0])
    if not args.quick:
        print(append_results("shared_cores.py", head, f"{args.seconds:g} s a cell", text, verdict))


if __name__ == "__main__":
    main()
