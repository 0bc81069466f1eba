"""Two torchrun "nodes" (two rendezvous over c10d, one process each) train as one process
with the same global batch: the same images per step, the gradients averaged, the same metrics.

The model is BatchNorm-free (a ViT: LayerNorm is per image) because torch's SyncBatchNorm
syncs CUDA tensors only, and per-rank BatchNorm statistics over half the batch would be a
real difference, not noise; on GPUs `--sync-bn` (auto: on) closes it (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from recog.engine.logging import ResultsTable

# a 4-block ViT (96 wide): top-1 about 0.54 after 6 epochs of digits, 20 s on 2 cores
TRAIN = ["-m", "recog", "train", "--data", "digits", "--model", "vit_tiny", "--img-size", "32",
         "--model-args", "depth=4", "embed_dim=96", "num_heads=3", "--epochs", "6",
         "--augment", "none", "--deterministic", "--seed", "1", "--patience", "0"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(out) -> tuple[dict, list[dict]]:
    return json.loads((out / "metrics.json").read_text()), ResultsTable.read(out / "results.csv")


# two trainings of a small ViT (about 70 s on 2 cores): in `make test-all`
@pytest.mark.slow
def test_two_nodes_train_as_one_process_with_the_same_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    one = tmp_path / "one"
    proc = subprocess.run([sys.executable, *TRAIN, "--batch-size", "32", "--out", str(one)],
                          capture_output=True, text=True, timeout=900, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    two = tmp_path / "two"
    port = _free_port()
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}",
            "--rdzv_id", "recog-two-nodes", *TRAIN, "--batch-size", "16", "--out", str(two)]  # fmt: skip
    nodes = [subprocess.Popen(node, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]  # fmt: skip
    outputs = [n.communicate(timeout=900) for n in nodes]
    for n, (_, err) in zip(nodes, outputs, strict=True):
        assert n.returncode == 0, err[-3000:]

    (m1, rows1), (m2, rows2) = _metrics(one), _metrics(two)
    import yaml

    cfg1 = yaml.safe_load((one / "config.yaml").read_text())
    cfg2 = yaml.safe_load((two / "config.yaml").read_text())
    assert cfg1["lr"] == cfg2["lr"]  # the recipe scaled it by the global batch, 32 both times
    assert cfg1["sync_bn"] == cfg2["sync_bn"] == "off"  # CPU: no SyncBatchNorm
    assert m1["num_samples"] == m2["num_samples"]  # every val image once across the nodes
    assert len(rows1) == len(rows2) == 6
    # the same steps on the same images: the first epoch's loss agrees to 4 digits, then
    # float summation order (two ranks' all-reduce against one sum) is amplified by training,
    # as much as by thread count alone: one process with 1 thread reached top-1 0.596, with
    # 2 threads 0.543 (measured); two nodes reached 0.621 and losses within 8%
    assert rows2[0]["train_loss"] == pytest.approx(rows1[0]["train_loss"], rel=1e-3)
    for r1, r2 in zip(rows1, rows2, strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=0.12)
    assert m2["top1"] == pytest.approx(m1["top1"], abs=0.08)
    assert m1["top1"] > 0.3  # it learned something: the comparison is not of two untrained models
