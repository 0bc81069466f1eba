"""The single-file HTML report: `write_report` owns report.html.

Everything is inline (CSS in a <style> block, plots as base64 PNG data URIs),
so the file can be mailed or archived alone and opens offline; there is no
script.  Every value that comes from data or config is HTML-escaped.  Sections
carry ids (`metrics`, `run-facts`, `per-class`, `training-curves`,
`label-statistics`, `training-samples`, `validation-plots`,
`sample-predictions`, `legend`, `configuration`) and each figure
`figure-<file stem>`, so a link or a test can find them.
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
.card .key { color: #8c959f; font-size: 0.75em; font-family: "DejaVu Sans Mono", monospace; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 6px 18px; }
ul.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid #59636e; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any, *, digits: int | None = None) -> str:
    """Numbers to short text: a metric with `digits` decimals (metrics are fractions in
    [0, 1], shown as metrics.json and the console line give them: no percentages), other
    floats with 6 significant digits."""
    if isinstance(value, bool) or not _is_number(value):
        return _esc(value)
    if isinstance(value, int) or not math.isfinite(value):
        return _esc(value)
    if digits is None or abs(value) >= 100:
        return _esc(f"{value:.6g}")
    return _esc(f"{value:.{digits}f}")


def _key_value_table(rows: Mapping[str, Any], *, table_id: str = "") -> str:
    body = "".join(
        f"<tr><th>{_esc(k)}</th><td{' class=num' if _is_number(v) else ''}>{_fmt(v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<table{f' id={table_id}' if table_id else ''}>{body}</table>"


def is_bookkeeping(name: str) -> bool:
    """metrics.json keys that describe the run, not the model: counts, times, epochs."""
    return (
        name.startswith("num_")
        or name.endswith("_seconds")
        or name in ("epochs_run", "best_epoch", "skipped_images", "data")
    )


def _headline(metrics: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    flat = {k: v for k, v in metrics.items() if _is_number(v) and not is_bookkeeping(k)}
    if not flat:
        return '<p class="muted">No metrics.</p>'
    cards = "".join(
        f'<div class="card" data-key="{_esc(k)}"><div class="name">{_esc(labels.get(k, k))}</div>'
        f'<div class="value">{_fmt(v, digits=4)}</div><div class="key">{_esc(k)}</div></div>'
        for k, v in flat.items()
    )
    return f'<div class="cards">{cards}</div>'


def _run_facts(metrics: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    facts = {
        labels.get(k, k): v
        for k, v in metrics.items()
        if is_bookkeeping(k) and (_is_number(v) or isinstance(v, str))
    }
    if not facts:
        return ""
    return '<h2 id="run-facts">Run facts</h2>' + _key_value_table(facts)


def _per_class(
    metrics: Mapping[str, Any], class_names: list[str], labels: Mapping[str, str]
) -> str:
    """Rows = classes, columns = every `per_class*` mapping in `metrics`, headed by the
    metric's name (`per_class` is the task's own: F1, AP, IoU)."""
    maps = {
        k: v for k, v in metrics.items() if k.startswith("per_class") and isinstance(v, Mapping)
    }
    if not maps:
        return ""
    names = list(class_names)
    for mapping in maps.values():  # classes the metrics know but class_names lacks
        names += [str(k) for k in mapping if str(k) not in names]
    headers = ["class"] + [labels.get(k, k.removeprefix("per_class_")) for k in maps]
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    rows = []
    for name in names:
        cells = []
        for mapping in maps.values():
            value = mapping.get(name)
            cells.append(f"<td class=num>{'' if value is None else _fmt(value, digits=3)}</td>")
        rows.append(f"<tr><th>{_esc(name)}</th>{''.join(cells)}</tr>")
    return (
        '<h2 id="per-class">Per class</h2>'
        f'<table id="per-class-table"><tr>{head}</tr>{"".join(rows)}</table>'
    )


def _figure(path: Path, caption: str = "") -> str:
    path = Path(path)
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    note = f" {_esc(caption)}" if caption else ""
    return (
        f'<figure id="figure-{_esc(path.stem.replace("_", "-"))}">'
        f'<img src="data:image/png;base64,{data}" alt="{_esc(path.stem)}">'
        f"<figcaption><code>{_esc(path.name)}</code>{note}</figcaption></figure>"
    )


def _section(
    section_id: str, heading: str, plots: list[Path], note: str = "", caption: str = ""
) -> str:
    parts = "".join(_figure(p, caption) for p in plots)
    if not parts:
        return ""
    text = f'<p class="muted">{_esc(note)}</p>' if note else ""
    return f'<h2 id="{section_id}">{_esc(heading)}</h2>{text}{parts}'


def _legend(legend: list[tuple[str, tuple[int, int, int]]]) -> str:
    if not legend:
        return ""
    items = "".join(
        f'<li><span class="swatch" style="background: rgb({r}, {g}, {b})"></span>{_esc(name)}</li>'
        for name, (r, g, b) in legend
    )
    return f'<ul class="legend" id="legend">{items}</ul>'


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
    labels: Mapping[str, str] | None = None,
    curves: Path | None = None,
    curve_panels: list[str] | None = None,
    label_plots: list[Path] | None = None,
    train_samples: Path | None = None,
    samples: Path | None = None,
    sample_caption: str = "",
    legend: list[tuple[str, tuple[int, int, int]]] | None = None,
) -> Path:
    """Write one self-contained report.html at `out`; returns `out`.

    summary: short facts about the run (task, model, data, epochs, best epoch).
    metrics: metrics.json's content: flat numbers become cards named by `labels`
      (metrics.json key -> human name, from the Task) or a "Run facts" table (counts,
      times, epochs: `is_bookkeeping`); `per_class*` mappings a per-class table.
    plots: the validation PNGs (confusion, PR and F1-confidence curves, reliability);
    curves, label_plots, train_samples, samples: the training curves (`curve_panels`:
      their panels' titles, listed in the caption), the training split's label
      statistics, a training batch as the model saw it, and sample predictions (with
      `sample_caption` and `legend`: (class name, RGB) of their colours), each in its
      section; every image embedded as a data URI and captioned with its file name.
    """
    out = Path(out)
    names = dict(labels or {})
    pictures = _figure_sections(curves, curve_panels, label_plots, train_samples, plots,
                                samples, sample_caption, legend)  # fmt: skip
    sections = [
        f"<h1>{_esc(title)}</h1>",
        '<h2 id="summary">Summary</h2>',
        _key_value_table(summary) if summary else '<p class="muted">No summary.</p>',
        '<h2 id="metrics">Metrics</h2>',
        '<p class="muted">On the validation data; fractions in [0, 1] as in metrics.json.</p>',
        _headline(metrics, names),
        _run_facts(metrics, names),
        _per_class(metrics, class_names, names),
        *pictures,
        '<h2 id="configuration">Configuration</h2>',
        _key_value_table(_flatten(config)) if config else '<p class="muted">No configuration.</p>',
    ]
    atomic_write_text(out, _page(title, sections))
    return out


def _figure_sections(
    curves: Path | None, curve_panels: list[str] | None, label_plots: list[Path] | None,
    train_samples: Path | None, plots: list[Path], samples: Path | None, sample_caption: str,
    legend: list[tuple[str, tuple[int, int, int]]] | None,
) -> list[str]:  # fmt: skip
    """The report's pictures, one section each (`write_report` says what each is)."""
    return [
        _section(
            "training-curves",
            "Training curves",
            [curves] if curves else [],
            caption="panels: " + ", ".join(curve_panels) if curve_panels else "",
        ),
        _section(
            "label-statistics",
            "Label statistics",
            list(label_plots or []),
            "The training split's annotations, before augmentation.",
        ),
        _section(
            "training-samples",
            "Training samples",
            [train_samples] if train_samples else [],
            "The first training batch as the model sees it: after the train transforms "
            "(and the mosaic or Mixup/CutMix where the run uses them), targets drawn on.",
        ),
        _section("validation-plots", "Validation plots", plots),
        _section(
            "sample-predictions",
            "Sample predictions",
            [samples] if samples else [],
            caption=sample_caption,
        ),
        _legend(list(legend or [])) if samples else "",
    ]


def _page(title: str, sections: list[str]) -> str:
    """The whole page around its sections (empty ones left out), styles inline."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{chr(10).join(s for s in sections if s)}\n</main></body></html>\n"
    )


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
