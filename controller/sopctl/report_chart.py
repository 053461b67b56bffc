"""The monitoring chart of the report (SOP Tahap 5.2): availability and p95 latency over the
monitoring period of each host, as inline SVG (no script, no external resource: the report stays one
self-contained file that renders offline).

``series`` turns the samples of ``stage5/monitoring.json`` into points (seconds from the first
sample, whether the sample was up, its latency, the running availability and running p95 up to it);
``svg`` draws them. A sample is up by the rule of the summary it came with: a server's when neither
its HTTP check nor its service failed (module_utils/health.py), a network device's when every check
passed.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 584, 22, 150


def _epoch(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile (as the monitoring summary computes it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _up(sample: dict[str, Any]) -> bool | None:
    if "passed" in sample:
        return bool(sample["passed"])
    if sample.get("http_ok") is None and sample.get("service_active") is None:
        return None
    return sample.get("http_ok") is not False and sample.get("service_active") is not False


def series(samples: Any) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    start = None
    up = checked = 0
    latencies: list[float] = []
    for sample in samples if isinstance(samples, list) else []:
        if not isinstance(sample, dict):
            continue
        at = _epoch(sample.get("t") or sample.get("at"))
        if at is None:
            continue
        start = at if start is None else start
        state = _up(sample)
        if state is not None:
            checked += 1
            up += 1 if state else 0
        latency = sample.get("latency_ms")
        if sample.get("http_ok") and isinstance(latency, (int, float)) and not isinstance(latency, bool):
            latencies.append(float(latency))
        else:
            latency = None
        points.append({"t": round(at - start, 1), "up": state, "latency_ms": latency,
                       "availability_pct": round(100.0 * up / checked, 2) if checked else None,
                       "p95_latency_ms": _p95(latencies)})
    return points


def svg(points: list[dict[str, Any]], labels: dict[str, str]) -> Markup:
    """The chart of one host (empty when there are no points)."""
    if not points:
        return Markup("")
    span = max(points[-1]["t"], 1.0)
    top_ms = max([p["latency_ms"] or 0 for p in points] + [p["p95_latency_ms"] or 0 for p in points] + [1.0]) * 1.1

    def x(t: float) -> float:
        return round(LEFT + (RIGHT - LEFT) * t / span, 1)

    def y_ms(ms: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * ms / top_ms, 1)

    def y_pct(pct: float) -> float:
        return round(BOTTOM - (BOTTOM - TOP) * pct / 100.0, 1)

    def line(key: str, scale, css: str) -> str:
        pts = " ".join(f"{x(p['t'])},{scale(p[key])}" for p in points if p[key] is not None)
        return f'<polyline class="{css}" fill="none" points="{pts}"/>' if pts else ""

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img">',
             f"<title>{escape(labels['chart_title'])}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" fill="none" stroke="#bbb"/>']
    for pct in (0, 50, 100):  # right axis: availability
        parts.append(f'<text x="{RIGHT + 4}" y="{y_pct(pct) + 4}" font-size="10">{pct}%</text>')
    timed = any(p["latency_ms"] is not None for p in points)  # a network device's samples have no latency
    for ms in (0, top_ms / 2, top_ms) if timed else ():  # left axis: latency
        parts.append(f'<text x="{LEFT - 4}" y="{y_ms(ms) + 4}" font-size="10" text-anchor="end">{ms:.0f}</text>')
    parts.append(f'<text x="{LEFT}" y="{BOTTOM + 16}" font-size="10">0 s</text>')
    parts.append(f'<text x="{RIGHT}" y="{BOTTOM + 16}" font-size="10" text-anchor="end">{span:.0f} s</text>')
    parts.append(line("latency_ms", y_ms, "lat"))
    parts.append(line("p95_latency_ms", y_ms, "p95"))
    parts.append(line("availability_pct", y_pct, "avail"))
    for p in points:
        if p["up"] is False:
            parts.append(f'<circle class="down" cx="{x(p["t"])}" cy="{BOTTOM}" r="3"/>')
    legend = ((labels["chart_availability"], "avail"),) + (
        ((labels["chart_p95"], "p95"), (labels["chart_latency"], "lat")) if timed else ()) + (
        (labels["chart_down"], "down"),)
    for index, (text, css) in enumerate(legend):
        left = LEFT + index * 132
        parts.append(f'<rect class="key-{css}" x="{left}" y="{HEIGHT - 14}" width="10" height="10"/>'
                     f'<text x="{left + 14}" y="{HEIGHT - 5}" font-size="10">{escape(text)}</text>')
    if timed:
        parts.append(f'<text x="{LEFT}" y="{TOP - 8}" font-size="10">ms</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped labels only


def stages_svg(runs: list[dict[str, Any]], labels: dict[str, str], term) -> Markup:
    """The stage runs of the change as bars on one time axis (a run still open ends at the last
    moment any run ended)."""
    spans = []
    for run in runs:
        start, end = _epoch(run.get("started")), _epoch(run.get("ended"))
        if start is not None:
            spans.append((run, start, end))
    if not spans:
        return Markup("")
    first = min(start for _, start, _ in spans)
    last = max([end for _, _, end in spans if end is not None] + [start for _, start, _ in spans])
    span = max(last - first, 1.0)
    row = 18
    height = TOP + row * len(spans) + 28
    parts = [f'<svg class="chart stages" viewBox="0 0 {WIDTH} {height}" '
             f'width="{WIDTH}" height="{height}" role="img">', f"<title>{escape(labels['stage_timeline'])}</title>"]
    for index, (run, start, end) in enumerate(spans):
        y = TOP + index * row
        left = LEFT + (RIGHT - LEFT) * (start - first) / span
        width = max((RIGHT - LEFT) * ((end if end is not None else last) - start) / span, 2.0)
        css = "ok" if run.get("status") == "succeeded" else ("open" if end is None else "bad")
        parts.append(f'<text x="{LEFT - 6}" y="{y + 12}" font-size="10" text-anchor="end">'
                     f'{escape(labels["stage"])} {escape(str(run.get("stage")))}</text>')
        parts.append(f'<rect class="run-{css}" x="{left:.1f}" y="{y + 2}" width="{width:.1f}" height="{row - 6}">'
                     f'<title>{escape(str(run.get("ident")))}: {escape(str(term(run.get("status"))))}</title></rect>')
        parts.append(f'<text x="{min(left + width + 4, RIGHT):.1f}" y="{y + 12}" font-size="10">'
                     f'{escape(str(term(run.get("status"))))}</text>')
    bottom = TOP + row * len(spans) + 14
    parts.append(f'<text x="{LEFT}" y="{bottom}" font-size="10">0 s</text>')
    parts.append(f'<text x="{RIGHT}" y="{bottom}" font-size="10" text-anchor="end">{span:.0f} s</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only
