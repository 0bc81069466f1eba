"""The single-file HTML report: `write_report` owns report.html.

Everything is inline (CSS in a <style> block, plots as base64 PNG data URIs),
so the file can be mailed or archived alone and opens offline; there is no
script.  Every value that comes from data or config is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recog.io import atomic_write_text

_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #fff; color: #1f2328;
  font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, "DejaVu Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; font-size: 0.93em; margin: 4px 0; }
th, td { padding: 4px 12px; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card .name { color: #59636e; font-size: 0.85em; }
.card .value { font-size: 1.35em; font-weight: 600; font-variant-numeric: tabular-nums; }
figure { margin: 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: 0.9em; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.9em; }
.muted { color: #59636e; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any, *, percent: bool = False) -> str:
    """Numbers to short text; fractions as percentages when asked."""
    if isinstance(value, bool) or not _is_number(value):
        return _esc(value)
    if isinstance(value, int):
        return _esc(value)
    if not math.isfinite(value):
        return _esc(value)
    if percent and 0.0 <= value <= 1.0:
        return _esc(f"{100 * value:.2f}%")
    return _esc(f"{value:.4g}")


def _key_value_table(rows: Mapping[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{_esc(k)}</th><td{' class=num' if _is_number(v) else ''}>{_fmt(v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _is_fraction_name(name: str) -> bool:
    """Metric names whose values are not fractions even when they fall in [0, 1]."""
    return not (name in ("nll", "lr") or "loss" in name or "second" in name)


def _headline(metrics: Mapping[str, Any]) -> str:
    flat = {k: v for k, v in metrics.items() if _is_number(v)}
    if not flat:
        return '<p class="muted">No metrics.</p>'
    cards = "".join(
        f'<div class="card"><div class="name">{_esc(k)}</div>'
        f'<div class="value">{_fmt(v, percent=_is_fraction_name(k))}</div></div>'
        for k, v in flat.items()
    )
    return f'<div class="cards">{cards}</div>'


def _per_class(metrics: Mapping[str, Any], class_names: list[str]) -> str:
    """Rows = classes, columns = every `per_class*` mapping in `metrics`."""
    maps = {
        k: v for k, v in metrics.items() if k.startswith("per_class") and isinstance(v, Mapping)
    }
    if not maps:
        return ""
    names = list(class_names)
    for mapping in maps.values():  # classes the metrics know but class_names lacks
        names += [str(k) for k in mapping if str(k) not in names]
    # `per_class` is the task's main metric (F1, AP, IoU), so it keeps its own name
    headers = ["class"] + [k if k == "per_class" else k.removeprefix("per_class_") for k in maps]
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    rows = []
    for name in names:
        cells = []
        for key, mapping in maps.items():
            value = mapping.get(name)
            percent = key != "per_class_support"
            cells.append(
                f"<td class=num>{'' if value is None else _fmt(value, percent=percent)}</td>"
            )
        rows.append(f"<tr><th>{_esc(name)}</th>{''.join(cells)}</tr>")
    return f"<h2>Per class</h2><table><tr>{head}</tr>{''.join(rows)}</table>"


def _figures(plots: list[Path]) -> str:
    parts = []
    for path in plots:
        path = Path(path)
        if not path.is_file():
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(path.stem)}">'
            f"<figcaption>{_esc(path.stem)}</figcaption></figure>"
        )
    return "<h2>Plots</h2>" + "".join(parts) if parts else ""


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config to dotted keys; lists shown as JSON."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list | tuple | Mapping):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def write_report(
    out: Path,
    *,
    title: str,
    summary: dict[str, float | str],
    metrics: dict[str, Any],
    plots: list[Path],
    config: dict[str, Any],
    class_names: list[str],
) -> Path:
    """Write one self-contained report.html at `out`; returns `out`.

    summary: short facts about the run (task, model, data, epochs, train_seconds, best epoch).
    metrics: metrics.json's content; flat numbers become headline cards (fractions
      as percentages), `per_class*` mappings a per-class table; nested lists are left out.
    plots: PNG files, embedded as data URIs and captioned with their stem.
    """
    out = Path(out)
    sections = [
        f"<h1>{_esc(title)}</h1>",
        "<h2>Summary</h2>",
        _key_value_table(summary) if summary else '<p class="muted">No summary.</p>',
        "<h2>Metrics</h2>",
        _headline(metrics),
        _per_class(metrics, class_names),
        _figures(plots),
        "<h2>Configuration</h2>",
        _key_value_table(_flatten(config)) if config else '<p class="muted">No configuration.</p>',
    ]
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(s for s in sections if s)}\n</main></body></html>\n"
    )
    atomic_write_text(out, page)
    return out


def upsert_section(report: Path, key: str, heading: str, body: str) -> Path:
    """Add (or replace) one section of an existing report.html, before its end.

    Sections added after training (explanations, calibration) sit between
    `<!-- section:key -->` markers, so writing one again replaces it.
    `body` is trusted HTML made by recog (its values escaped by the caller).
    """
    report = Path(report)
    page = report.read_text(encoding="utf-8")
    start, end = f"<!-- section:{key} -->", f"<!-- /section:{key} -->"
    block = f"{start}<h2>{_esc(heading)}</h2>{body}{end}"
    if start in page and end in page:
        before, rest = page.split(start, 1)
        page = before + block + rest.split(end, 1)[1]
    else:
        page = page.replace("\n</main>", f"\n{block}\n</main>", 1)
    atomic_write_text(report, page)
    return report
