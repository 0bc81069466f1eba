"""What `recog attack` leaves: `robustness.json`, one record per attack, the curve, the
example grid and the run report's robustness section.

`RUN/robustness/` keeps one `robustness-<attack>-<norm>.json` per attack run on the
model, so the curve and the report compare attacks, and a black-box attack (Square)
that beats a gradient attack at the same eps is flagged: the gradients are masked and
the gradient attack's numbers overstate the model's robustness.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import torch

from recog.io import atomic_write_text
from recog.report.plots import plot_attack_examples, plot_robustness
from recog.robust.measure import BLACK_BOX, RISE_TOLERANCE, Robustness
from recog.tasks.base import Task

RESULT_NAME = "robustness.json"
CURVE_NAME = "robustness.png"
#: gradient attacks a black-box attack is compared with
GRADIENT = ("pgd", "fgsm")


def record_name(attack: str, norm: str) -> str:
    return f"robustness-{attack}-{norm}.json"


def read_records(save_dir: Path) -> list[dict[str, Any]]:
    """Every per-attack record in `save_dir` (unreadable files are skipped)."""
    records = []
    for path in sorted(Path(save_dir).glob("robustness-*.json")):
        try:
            value = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(value, dict) and "robust" in value and "clean" in value:
            records.append(value)
    return records


def compare_attacks(records: list[dict[str, Any]]) -> list[str]:
    """Flags where a black-box attack beats a gradient attack at the same norm and eps."""
    flags = []
    for box in (r for r in records if r["attack"] in BLACK_BOX):
        for grad in (r for r in records if r["attack"] in GRADIENT and r["norm"] == box["norm"]):
            metric = grad["metric"]
            by_eps = {round(row["eps"], 6): row[metric] for row in grad["robust"]}
            for row in box["robust"]:
                other = by_eps.get(round(row["eps"], 6))
                if other is None or row[metric] is None:
                    continue
                if row[metric] < other - RISE_TOLERANCE:
                    flags.append(
                        f"{box['attack']} (no gradients) beats {grad['attack']} at eps "
                        f"{row['eps']:.4g} ({metric} {row[metric]:.3f} < {other:.3f}): gradient "
                        f"masking; {grad['attack']}'s numbers overstate the robustness"
                    )
                    break
    return flags


def _magnified(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return (delta / (2 * max(eps, 1e-12)) + 0.5).clamp(0, 1)


def example_rows(task: Task, model: torch.nn.Module, result: Robustness, device: Any) -> list:
    """(clean drawn, title, adversarial drawn, title, perturbation) per kept example."""
    rows = []
    for shown in result.examples:
        clean, adv, eps = shown["clean"], shown["adv"], shown["eps"]
        adv_u8 = (adv.clamp(0, 1) * 255).round().to(torch.uint8)
        model.eval()
        with torch.inference_mode():
            before = task.predict(model, clean.to(device))
            after = task.predict(model, adv.to(device))
        for i in range(len(clean)):
            rows.append((
                task.draw(clean[i], before[i]), "clean",
                task.draw(adv_u8[i], after[i]), f"{result.attack} eps {eps * 255:.3g}/255",
                _magnified(adv[i] - clean[i].float() / 255, eps),
            ))  # fmt: skip
    return rows


def write(save_dir: Path, result: Robustness, rows: list) -> dict[str, Any]:
    """robustness.json (this attack), its record, the curve of every recorded attack and the
    example grid; the JSON written (with the cross-attack flags added)."""
    save_dir.mkdir(parents=True, exist_ok=True)
    record = result.to_dict()
    atomic_write_text(
        save_dir / record_name(result.attack, result.norm), json.dumps(record, indent=2)
    )
    records = read_records(save_dir)
    cross = compare_attacks(records)
    if cross:
        record["checks"] = {**record["checks"], "trustworthy": False,
                            "flags": [*record["checks"]["flags"], *cross]}  # fmt: skip
    record["plots"] = [CURVE_NAME]
    plot_robustness(records, save_dir / CURVE_NAME)
    if rows:
        name = f"examples-{result.attack}-{result.norm}.png"
        plot_attack_examples(rows, save_dir / name)
        record["plots"].append(name)
    atomic_write_text(save_dir / RESULT_NAME, json.dumps(record, indent=2))
    return record


def report_section(save_dir: Path, record: dict[str, Any]) -> str:
    """The run report's robustness section: every attack's table, the flags, the figures."""
    esc = html.escape
    parts = []
    records = read_records(save_dir)
    for r in records:
        metric = r["metric"]
        head = "".join(f"<th>{esc(h)}</th>" for h in ("eps", metric, "drop"))
        clean = r["clean"].get(metric, math.nan)
        body = f"<tr><td>0 (clean)</td><td>{clean:.4f}</td><td>-</td></tr>" + "".join(
            f"<tr><td>{row['eps']:.4g} ({row['eps'] * 255:.3g}/255)</td>"
            + (
                "<td>not measured</td><td>-</td>"
                if row[metric] is None
                else f"<td>{row[metric]:.4f}</td><td>{clean - row[metric]:+.4f}</td>"
            )
            + "</tr>"
            for row in r["robust"]
        )
        parts.append(
            f"<h3>{esc(r['attack'])} ({esc(r['norm'])}, {r.get('steps')} steps, "
            f"{esc(r.get('backend', ''))}) on {r.get('images')} images</h3>"
            f"<table><tr>{head}</tr>{body}</table>"
        )
    flags = [*record["checks"].get("flags", [])]
    if flags:
        items = "".join(f"<li>{esc(f)}</li>" for f in flags)
        parts.append(
            f'<p class="warn"><b>These numbers are not to be trusted:</b></p><ul>{items}</ul>'
        )
    for name in record.get("plots", []):
        path = save_dir / name
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode()
            parts.append(f'<img src="data:image/png;base64,{data}" alt="{esc(name)}" '
                         'style="max-width:100%">')  # fmt: skip
    return "".join(parts)
