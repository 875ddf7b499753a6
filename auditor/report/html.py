"""The HTML report: one page with charts that reads offline. plotly.js is one shared file
beside the reports (``assets/plotly-<version>.min.js``, written once) so a nightly page stays
small; a standalone page inlines it instead. The template autoescapes logged text, and no
chart carries it."""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor.numerals import p_value
from auditor.report.text import (
    GATE_WORDS,
    ci,
    failed_first,
    gate_tally,
    mean_cell,
    notes,
    num,
    state,
    status_ok,
    truncate,
)

if TYPE_CHECKING:
    import jinja2

    from auditor.report.gather import Report

ASSETS = "assets"  # beside the run folders: one plotly.js for every report


def plotly_asset(directory: Path) -> Path:
    """``directory/assets/plotly-<version>.min.js``, written once (atomically: concurrent
    runs may race) and shared by every report under ``directory``."""
    import plotly
    from plotly.offline import get_plotlyjs

    asset = directory / ASSETS / f"plotly-{plotly.__version__}.min.js"
    if not asset.exists():
        asset.parent.mkdir(parents=True, exist_ok=True)
        partial = asset.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(get_plotlyjs(), encoding="utf-8")
        partial.replace(asset)
    return asset


@functools.cache
def _environment() -> jinja2.Environment:
    """One per process: it keeps the compiled template, which a long-lived scheduler (or a
    test session) would otherwise compile again for every report."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("auditor", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(num=num, p=p_value, ci=ci, truncate_text=truncate, mean=mean_cell)
    return env


def render_html(report: Report, plotly_src: str | None = None) -> str:
    """The HTML page. ``plotly_src``: a relative URL of the shared plotly.js (small page
    beside the asset); None inlines plotly.js (one standalone page, ≈4.7 MB)."""
    from markupsafe import Markup
    from plotly.offline import get_plotlyjs

    env = _environment()
    # Only library code and chart markup built from numbers and metric names are marked safe.
    charts = [{**chart, "html": Markup(chart["html"])} for chart in _charts(report)]
    manifest = report.manifest or {"code_version": report.run["code_version"],
                                   "fingerprint": report.run["fingerprint"]}
    gates = report.verdict.gates
    return env.get_template("report.html.j2").render(
        data=report, verdict=report.verdict, ok=status_ok(report), state=state(report),
        gates=failed_first(gates), charts=charts, tally=gate_tally(gates), notes=notes(report),
        gate_words=GATE_WORDS,
        plotlyjs=None if plotly_src else Markup(get_plotlyjs()), plotly_src=plotly_src,
        manifest=_flatten({k: v for k, v in manifest.items() if k != "counts"}),
        count_rows=_flatten(report.summary["counts"] or {}),
    )


def _charts(report: Report) -> list[dict[str, str]]:
    """Plotly figures as ``div`` snippets; plotly.js itself is inlined once by the template."""
    built = [("trend", "Headline metrics across runs", _trend_figure(report)),
             ("causes", "Why queries failed (share of queries, drift apart)",
              _cause_figure(report)),
             ("scatter", "Documents an answer needs, and gatherable@k", _scatter_figure(report)),
             ("deltas", "Change against the baseline (95% CI)", _delta_figure(report)),
             ("gaps", "Knowledge gaps: topics by queries (size) and failure share (colour)",
              _gaps_figure(report))]
    config = {"displaylogo": False, "responsive": True,
              "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
    return [{"id": name, "title": title,
             "html": figure.to_html(full_html=False, include_plotlyjs=False,
                                    div_id=f"chart-{name}", config=config)}
            for name, title, figure in built if figure is not None]


def _layout(figure: Any, height: int = 340) -> Any:
    figure.update_layout(template="plotly_white", height=height,
                         margin={"l": 10, "r": 10, "t": 10, "b": 10},
                         legend={"orientation": "h", "y": -0.2}, font={"size": 12})
    return figure


def _trend_figure(report: Report) -> Any:
    import plotly.graph_objects as go

    if not report.trend:
        return None
    figure = go.Figure()
    for metric in dict.fromkeys(row["metric"] for row in report.trend):
        rows = [row for row in report.trend if row["metric"] == metric]
        figure.add_trace(go.Scatter(
            x=[row["started_at"] for row in rows], y=[row["mean"] for row in rows],
            customdata=[row["run_id"] for row in rows], name=metric, mode="lines+markers",
            marker_symbol=["x" if row["gate_status"] == "failed" else "circle" for row in rows],
            marker_size=9,
            hovertemplate="%{customdata}<br>" + metric + " %{y:.3f}<extra></extra>"))
    figure.update_yaxes(title="mean (× = gates failed)", rangemode="tozero")
    times = [datetime.fromisoformat(row["started_at"]) for row in report.trend]
    pad = (max(times) - min(times)) * 0.06 or timedelta(hours=1)
    figure.update_xaxes(range=[min(times) - pad, max(times) + pad])
    return _layout(figure)


def _cause_figure(report: Report) -> Any:
    import plotly.graph_objects as go

    causes = report.causes
    if not causes:
        return None
    figure = go.Figure(go.Bar(
        y=[c["cause"] for c in causes], x=[c["share"] for c in causes], orientation="h",
        name="this run", text=[f"{c['queries']}" for c in causes], marker_color="#c2410c",
        textposition="outside", textangle=0, cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%} (%{text} queries)<extra></extra>"))
    if report.verdict.comparison is not None:
        figure.add_trace(go.Bar(
            y=[c["cause"] for c in causes], x=[c["baseline_share"] for c in causes],
            orientation="h", name="baseline", marker_color="#94a3b8"))
    figure.update_xaxes(tickformat=".0%", title="share of queries")
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, height=120 + 32 * len(causes))


def _scatter_figure(report: Report) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    scatter = report.scatter
    if not scatter["sizes"] and not scatter["gatherable"]:
        return None
    figure = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.12,
                           subplot_titles=("queries by documents needed", "gatherable@k"))
    sizes = scatter["sizes"]
    figure.add_trace(go.Bar(
        x=[str(s["size"]) if s["size"] is not None else "none" for s in sizes],
        y=[s["queries"] for s in sizes], name="queries", showlegend=False,
        marker_color=["#dc2626" if (s["size"] or 0) > scatter["limit"] else "#2563eb"
                      for s in sizes]), row=1, col=1)
    figure.add_trace(go.Bar(
        x=[f"@{g['k']}" for g in scatter["gatherable"]],
        y=[g["mean"] for g in scatter["gatherable"]], name="gatherable", showlegend=False,
        marker_color="#0d9488"), row=1, col=2)
    figure.update_xaxes(type="category")
    figure.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=2)
    figure = _layout(figure)
    figure.update_layout(margin={"t": 30})
    return figure


def _delta_figure(report: Report) -> Any:
    import plotly.graph_objects as go

    rows = [row for row in report.headline if row["delta"] is not None]
    if not rows:
        return None
    figure = go.Figure(go.Scatter(
        x=[row["delta"] for row in rows], y=[row["metric"] for row in rows], mode="markers",
        marker={"size": 10, "color": "#2563eb"}, error_x={
            "type": "data", "symmetric": False,
            "array": [_gap(row["ci_high"], row["delta"]) for row in rows],
            "arrayminus": [_gap(row["delta"], row["ci_low"]) for row in rows]},
        hovertemplate="%{y}: %{x:+.3f}<extra></extra>"))
    figure.add_vline(x=0, line_dash="dot", line_color="#64748b")
    figure.update_xaxes(title="current − baseline", zeroline=False)
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, height=120 + 40 * len(rows))


def _gap(high: float | None, low: float | None) -> float:
    return 0.0 if high is None or low is None else high - low


def _flatten(value: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested manifest as ``a.b`` → value rows; lists stay compact JSON."""
    rows: list[tuple[str, str]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            rows += _flatten(item, f"{name}.")
        else:
            text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
            rows.append((name, truncate(text, 300)))
    return rows



def _gaps_figure(report: Report) -> Any:
    clusters = (report.gaps or {}).get("clusters") or []
    return _layout(gap_map(clusters), height=420) if clusters else None


def gap_map(clusters: list[dict[str, Any]]) -> Any:
    """One bubble per topic on a 2-D map of the query clusters: size = queries, colour =
    failure share; the hover says the corpus density next to the share of queries. Topics
    are named by number: their terms are words from the log, kept out of figure labels
    (plotly renders some HTML in them); tables name them. The dashboard draws the same."""
    import plotly.graph_objects as go

    most = max(max(c["queries"] for c in clusters), 1)
    figure = go.Figure(go.Scatter(
        x=[c["x"] for c in clusters], y=[c["y"] for c in clusters], mode="markers+text",
        text=[f"#{c['cluster']}" for c in clusters], textposition="middle center",
        marker={"size": [12 + 38 * (c["queries"] / most) ** 0.5 for c in clusters],
                "color": [c["failure_share"] for c in clusters], "colorscale": "OrRd",
                "cmin": 0, "cmax": 1, "showscale": True,
                "colorbar": {"title": "failing", "tickformat": ".0%"},
                "line": {"width": 1, "color": "#334155"}},
        customdata=[[c["queries"], c["query_share"], c["corpus_density"]] for c in clusters],
        hovertemplate="topic %{text}<br>%{customdata[0]} queries (%{customdata[1]:.0%}), "
                      "failing %{marker.color:.0%}<br>corpus density %{customdata[2]:.1%}"
                      "<extra></extra>"))
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return figure
