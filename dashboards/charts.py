"""Plotly figures the pages show: built from small aggregated frames, never from raw rows.

Text from the log never goes into a figure's labels (plotly renders some HTML in them);
axes and hover texts carry metric names, run ids, counts and numbers only.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from auditor.cases import DRIFT

GATE_COLOUR = {"passed": "#2e7d32", "failed": "#c62828", "not_evaluated": "#f9a825",
               "not gated": "#757575"}
DIRECTION_COLOUR = {"better": "#2e7d32", "worse": "#c62828", "unchanged": "#757575"}
HEIGHT = 320


def layout(fig: go.Figure, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def run_axis(df: pd.DataFrame) -> pd.Series:
    """Runs as ordered categories ("Nov 24 02:00<br>1d1364"): nightly runs are evenly spaced
    events, and a time axis would squeeze same-day reruns into one point."""
    return (pd.to_datetime(df["started_at"]).dt.strftime("%b %d %H:%M") + "<br>"
            + df["run_id"].str[-6:])


def trend(df: pd.DataFrame, metrics: list[str], cols: int = 4) -> go.Figure:
    """One small chart per metric: mean per run with its 95% CI, markers coloured by gate."""
    present = [m for m in metrics if m in set(df["metric"])]
    rows = max((len(present) + cols - 1) // cols, 1)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=present, vertical_spacing=0.18)
    for i, metric in enumerate(present):
        part = df[df["metric"] == metric]
        fig.add_trace(go.Scatter(
            x=run_axis(part), y=part["mean"], mode="lines+markers", name=metric,
            showlegend=False, line={"color": "#1f77b4"},
            marker={"size": 9, "color": [GATE_COLOUR.get(g, "#757575")
                                         for g in part["gate_status"]]},
            error_y={"type": "data", "symmetric": False,
                     "array": part["ci_high"] - part["mean"],
                     "arrayminus": part["mean"] - part["ci_low"], "thickness": 1},
            customdata=part[["run_id", "n", "gate_status"]],
            hovertemplate="run %{customdata[0]}<br>%{y:.3f} (n %{customdata[1]})"
                          "<br>gate %{customdata[2]}<extra></extra>",
        ), row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(type="category", tickangle=0, tickfont={"size": 10})
    return layout(fig, height=280 * rows)


def deltas(df: pd.DataFrame, judged: bool = True) -> go.Figure:
    """Each metric's change (current - baseline) with its 95% CI; green = better. Not
    ``judged`` (runs that are not comparable): every change grey, none better or worse."""
    df = df.dropna(subset=["delta"]).copy()
    better = df["delta"].where(~df["lower_is_better"], -df["delta"])
    significant = (df["p_holm"].fillna(1.0) < 0.05 if "p_holm" in df else False) & judged
    df["direction"] = "unchanged"
    df.loc[significant & (better > 0), "direction"] = "better"
    df.loc[significant & (better < 0), "direction"] = "worse"
    fig = go.Figure()
    for direction, part in df.groupby("direction"):
        fig.add_trace(go.Scatter(
            x=part["delta"], y=part["metric"], mode="markers", name=str(direction),
            marker={"size": 10, "color": DIRECTION_COLOUR[str(direction)]},
            error_x={"type": "data", "symmetric": False,
                     "array": (part["ci_high"] - part["delta"]).fillna(0),
                     "arrayminus": (part["delta"] - part["ci_low"]).fillna(0)},
            hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
        ))
    fig.add_vline(x=0, line_dash="dot", line_color="#9e9e9e")
    fig.update_xaxes(title="change (current − baseline), 95% CI")
    return layout(fig, height=max(HEIGHT, 28 * len(df) + 80))


def cause_bars(df: pd.DataFrame, value: str = "queries") -> go.Figure:
    """Horizontal bars of queries per cause, largest on top."""
    df = df.sort_values(value)
    fig = go.Figure(go.Bar(x=df[value], y=df["cause"], orientation="h",
                           text=[f"{q:,} · {s:.0%}" for q, s in zip(df["queries"], df["share"],
                                                                   strict=True)],
                           textposition="auto", marker_color="#ef6c00",
                           hovertemplate="%{y}: %{x:,}<extra></extra>"))
    fig.update_xaxes(title="queries")
    return layout(fig, height=max(HEIGHT, 30 * len(df) + 80))


def grouped_bars(df: pd.DataFrame, category: str, series: list[str], title: str) -> go.Figure:
    """Horizontal bars per category, one bar per series (e.g. baseline vs current)."""
    df = df.iloc[::-1]
    colours = ["#90a4ae", "#ef6c00"]
    fig = go.Figure([go.Bar(y=df[category], x=df[name], name=name, orientation="h",
                            marker_color=colours[i % 2], text=df[name], textposition="outside",
                            cliponaxis=False)
                     for i, name in enumerate(series)])
    fig.update_layout(barmode="group", title=title)
    fig.update_xaxes(title="queries")
    return layout(fig, height=max(HEIGHT, 44 * len(df) + 100))


def cause_trend(df: pd.DataFrame) -> go.Figure:
    """Share of queries per cause across runs (drift dotted: it is no failure)."""
    fig = go.Figure()
    for cause, part in df.groupby("cause"):
        drift = cause == DRIFT  # not a failure: drawn apart, dotted and grey
        name = "drift (not a failure)" if drift else str(cause)
        fig.add_trace(go.Scatter(x=run_axis(part), y=part["share"], name=name,
                                 mode="lines+markers",
                                 line={"dash": "dot", "color": "#9e9e9e"} if drift else None,
                                 hovertemplate=f"{name}: %{{y:.1%}}<extra></extra>"))
    fig.update_yaxes(title="share of queries", tickformat=".0%")
    fig.update_xaxes(type="category")
    return layout(fig)


def lorenz(df: pd.DataFrame, gini: float | None) -> go.Figure:
    fig = go.Figure([
        go.Scatter(x=df["documents"], y=df["retrievals"], mode="lines", name="corpus",
                   fill="tozeroy", line={"color": "#1f77b4"}),
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="equal retrieval",
                   line={"dash": "dot", "color": "#9e9e9e"}),
    ])
    title = "Lorenz curve of retrievals at k" + (f" (Gini {gini:.3f})" if gini is not None
                                                  else "")
    fig.update_layout(title=title)
    fig.update_xaxes(title="share of documents (least retrieved first)", tickformat=".0%")
    fig.update_yaxes(title="share of retrievals", tickformat=".0%")
    return layout(fig, height=360)


def bars(df: pd.DataFrame, x: str, y: str, title: str, x_title: str, y_title: str,
         colour: str = "#1f77b4") -> go.Figure:
    fig = go.Figure(go.Bar(x=df[x].astype(str), y=df[y], marker_color=colour,
                           hovertemplate="%{x}: %{y:,}<extra></extra>"))
    fig.update_layout(title=title)
    fig.update_xaxes(title=x_title, type="category")
    fig.update_yaxes(title=y_title)
    return layout(fig)


def gap_map(df: pd.DataFrame) -> go.Figure:
    """Topics on a 2-D map, as the HTML report draws them (``auditor.report.html.gap_map``)."""
    from auditor.report.html import gap_map as report_gap_map

    return layout(report_gap_map(df.to_dict("records")), height=420)
