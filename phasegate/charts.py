"""Charts of what a bake criterion judged, as a PNG the Allure report shows inline.

A bake criterion judges a series over the bake window; its verdict lists offending samples
as text. The chart draws the same data so a reviewer sees it: every series over the window,
the threshold it was judged by, the window's start and end, today's position while the window
is still open (and the part still to come, shaded), the offending samples and the holes (spans
without data, which a criterion counts as failures).

The data is a plain dataclass (`CriterionData`) with a JSON form, the contract between the
bake criteria (they attach it as the Allure attachment "criterion-data") and this drawing:

    {"series": {"<name>": [[unix_ts, value], ...]},
     "threshold": {"value": 0.9, "label": "90% of the limit"} | null,
     "window_start": ts, "window_end": ts, "now": ts,
     "offending": [[ts, value], ...], "holes": [[start, end], ...],
     "title": "...", "unit": "..."}   # optional; "criterion" (phasegate.bake's name) = title

Drawn with matplotlib (Agg backend: no display, no fonts or files fetched; the object API,
not pyplot, so nothing global is shared between charts). Every text drawn passes
`phasegate.secrets.redact`. No pytest here.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phasegate.secrets import redact

UTC = dt.UTC
ATTACHMENT_NAME = "criterion-data"  # the JSON attachment a bake criterion leaves for the chart
CHART_NAME = "Chart: {title}"
MAX_LABEL = 70  # characters of a series name in the legend

Point = tuple[float, float]


@dataclass(frozen=True)
class Threshold:
    value: float
    label: str = ""


@dataclass(frozen=True)
class CriterionData:
    series: dict[str, list[Point]]
    window_start: float
    window_end: float
    now: float
    threshold: Threshold | None = None
    offending: list[Point] = field(default_factory=list)
    holes: list[Point] = field(default_factory=list)
    title: str = ""
    unit: str = ""

    @property
    def window_open(self) -> bool:
        return self.window_start <= self.now < self.window_end

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> CriterionData:
        """From the JSON contract (a dict, or its text); tolerant of a threshold given as
        a bare number or [value, label] and of points given as dicts {t|ts, v|value}."""
        d = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
        th = d.get("threshold")
        if isinstance(th, Mapping):
            threshold = Threshold(float(th["value"]), str(th.get("label", "")))
        elif isinstance(th, (list, tuple)) and th:
            threshold = Threshold(float(th[0]), str(th[1]) if len(th) > 1 else "")
        elif isinstance(th, (int, float)) and not isinstance(th, bool):
            threshold = Threshold(float(th))
        else:
            threshold = None
        return cls(
            series={str(k): _points(v) for k, v in (d.get("series") or {}).items()},
            window_start=float(d["window_start"]), window_end=float(d["window_end"]), now=float(d["now"]),
            threshold=threshold, offending=_points(d.get("offending")), holes=_points(d.get("holes")),
            title=str(d.get("title") or d.get("criterion") or ""), unit=str(d.get("unit", "") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "series": {k: [list(p) for p in v] for k, v in self.series.items()},
            "threshold": None if self.threshold is None else {"value": self.threshold.value, "label": self.threshold.label},
            "window_start": self.window_start, "window_end": self.window_end, "now": self.now,
            "offending": [list(p) for p in self.offending], "holes": [list(h) for h in self.holes],
            "title": self.title, "unit": self.unit,
        }


def _points(raw: Any) -> list[Point]:
    try:  # the JSON contract's own form, [[t, v], ...]: one pass (a 14-day series has tens of thousands)
        return [(float(t), float(v)) for t, v in raw or []]
    except (TypeError, ValueError, KeyError):
        pass  # dicts, or anything else the tolerant reading below takes
    out = []
    for p in raw or []:
        if isinstance(p, Mapping):
            t, v = p.get("t", p.get("ts", p.get("start"))), p.get("v", p.get("value", p.get("end")))
        else:
            t, v = p[0], p[1]
        out.append((float(t), float(v)))
    return out


def holes_in(points: list[Point], start: float, end: float, tolerance: float) -> list[Point]:
    """Spans of [start, end] longer than `tolerance` with no sample: before the first, between
    two, after the last (up to `end`, which is now for a window still open)."""
    ts = sorted(t for t, _ in points if start <= t <= end)
    if not ts:
        return [(start, end)] if end > start else []
    out = []
    edges = [start, *ts, end]
    for a, b in zip(edges, edges[1:], strict=False):
        if b - a > tolerance:
            out.append((a, b))
    return out


def _broken_at_holes(points: list[Point], holes: list[Point]):
    """x (matplotlib date numbers), y with a gap (NaN) wherever a hole lies between two samples: no line across
    missing data. In arrays: a 14-day series has tens of thousands of samples, which matplotlib would otherwise
    convert one datetime at a time."""
    import numpy as np
    from matplotlib import dates as mdates

    ts = np.array([t for t, _ in points], dtype=float)
    ys = np.array([v for _, v in points], dtype=float)
    if len(ts) > 1 and holes:
        before, after = ts[:-1], ts[1:]
        gap = np.zeros(len(before), dtype=bool)
        for a, b in holes:
            gap |= (before <= a) & (b <= after)
        at = np.nonzero(gap)[0]
        ts = np.insert(ts, at + 1, (before[at] + after[at]) / 2)
        ys = np.insert(ys, at + 1, np.nan)
    return ts / 86400.0 + mdates.date2num(_dt(0.0)), ys


def _dt(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, UTC)


def _short(name: str) -> str:
    name = redact(name)
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…"


def render_png(data: CriterionData, *, title: str = "", dpi: int = 100) -> bytes:
    """The chart as PNG bytes (900x420 px)."""
    from matplotlib import image

    # one draw, then its pixels as PNG: what `savefig` writes, without the layout-only draw it runs first
    # for a figure with a layout engine (the 64 charts of a main job came out byte-identical)
    fig = draw(data, title=title, dpi=dpi)
    fig.canvas.draw()
    buf = io.BytesIO()
    no_software: dict[str, Any] = {"Software": None}  # None leaves the key out (the stubs allow only str)
    image.imsave(buf, fig.canvas.buffer_rgba(), format="png", origin="upper", dpi=dpi, metadata=no_software)
    return buf.getvalue()


def draw(data: CriterionData, *, title: str = "", width: float = 9.0, height: float = 4.2, dpi: int = 100):
    """The chart as a matplotlib Figure (its artists are what the tests inspect)."""
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.xaxis_date(tz=UTC)  # the series come as date numbers (_broken_at_holes), the marks as datetimes
    # The x axis is in datetimes, which matplotlib's unit support converts; its stubs type those
    # arguments as float only (matplotlib/matplotlib#27140), hence the `type: ignore[arg-type]` below.
    start, end, now = _dt(data.window_start), _dt(data.window_end), _dt(data.now)

    for name, points in data.series.items():
        if not points:
            continue
        xs, ys = _broken_at_holes(sorted(points), data.holes)
        ax.plot(xs, ys, drawstyle="steps-post" if len(points) > 60 else "default",
                marker="o" if len(points) <= 60 else None, markersize=3, linewidth=1.2, label=_short(name))
    if data.threshold is not None:
        ax.axhline(data.threshold.value, color="#c62828", linestyle="--", linewidth=1.3,
                   label=_short(data.threshold.label or f"threshold {data.threshold.value:g}"))
    for i, (a, b) in enumerate(data.holes):
        ax.axvspan(_dt(a), _dt(b), color="#ff9800", alpha=0.25, linewidth=0,  # type: ignore[arg-type]
                   label=f"no data ({len(data.holes)} hole{'s' if len(data.holes) != 1 else ''})" if i == 0 else None)
    if data.offending:
        ax.scatter([_dt(t) for t, _ in data.offending], [v for _, v in data.offending], marker="x", s=46,  # type: ignore[arg-type]
                   color="#b71c1c", linewidths=1.8, zorder=5, label=f"offending ({len(data.offending)})")
    for x, label, dx, ha in ((start, "window start", 3, "left"), (end, "window end", -3, "right")):
        ax.axvline(x, color="#424242", linewidth=1.1)  # type: ignore[arg-type]
        ax.annotate(label, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(dx, -12), ha=ha,
                    textcoords="offset points", fontsize=8, color="#424242",
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    values = [v for pts in data.series.values() for _, v in pts] + [v for _, v in data.offending]
    values += [data.threshold.value] if data.threshold is not None else []
    values = [v for v in values if v == v]
    if values:  # room above the highest value (or threshold) for the labels; zero in view for counts
        lo, hi = min(0.0, *values), max(values)
        span = (hi - lo) or 1.0
        ax.set_ylim(lo - 0.05 * span, hi + 0.2 * span)
    if data.window_open:
        days = (data.window_end - data.window_start) / 86400
        day = (data.now - data.window_start) / 86400
        ax.axvspan(now, end, color="#9e9e9e", alpha=0.15, linewidth=0, label="still to come")  # type: ignore[arg-type]
        ax.axvline(now, color="#1565c0", linestyle=":", linewidth=1.6)  # type: ignore[arg-type]
        ax.annotate(f"today (day {day:.1f} of {days:g})", (now, 0.0), xycoords=("data", "axes fraction"),
                    xytext=(3, 4), textcoords="offset points", fontsize=8, color="#1565c0")

    margin = dt.timedelta(seconds=max(3600.0, (data.window_end - data.window_start) * 0.02))
    ax.set_xlim(start - margin, end + margin)  # type: ignore[arg-type]
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=4, maxticks=9))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d", tz=UTC))
    ax.set_xlabel("UTC")
    if data.unit:
        ax.set_ylabel(redact(data.unit))
    ax.grid(True, color="#e0e0e0", linewidth=0.6)
    ax.set_title(_short(title or data.title or "criterion"), fontsize=10, loc="left")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3,
                  frameon=False)
    return fig


# -- a table as an image (the Phase 3 cutover matrix) ------------------------------------------

CELL_COLOURS = {"ok": ("#e5f6e5", "#14621b"), "bad": ("#fbe4e4", "#9b1c1c"), "broken": ("#fff4d6", "#7a5200"),
                "none": ("#ffffff", "#777777")}


def table_png(title: str, columns: list[str], rows: list[tuple[str, list[tuple[str, str]]]], note: str = "",
              subtitle: str = "", dpi: int = 100) -> bytes:
    """A coloured table as PNG: `rows` are (first cell, [(text, kind)]) with kind one of
    CELL_COLOURS. An image shows at its natural size in the report (an HTML attachment's frame
    cannot size itself from file://). Laid out by hand, in inches: one character ~0.075 in."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    char, row_h, pad = 0.075, 0.26, 0.08
    texts = [[redact(first)] + [redact(t) for t, _ in cols] for first, cols in rows]
    widths = [(max(len(str(columns[c])), *(len(r[c]) for r in texts)) + 1) * char + 2 * pad if texts
              else (len(str(columns[c])) + 1) * char + 2 * pad for c in range(len(columns))]
    width = max(sum(widths), 5.0) + 0.2
    head = [redact(title)] + textwrap.wrap(redact(subtitle), int(width / 0.062)) if subtitle else [redact(title)]
    foot = textwrap.wrap(redact(note), int(width / 0.065)) if note else []
    top = 0.1 + 0.24 * len(head) + 0.08
    height = top + row_h * (len(rows) + 1) + 0.1 + 0.18 * len(foot) + 0.05
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    for i, line in enumerate(head):
        ax.text(0.1, 0.1 + 0.24 * i, line, va="top", fontsize=11 if i == 0 else 9,
                fontweight="bold" if i == 0 else "normal")
    grid = [([str(c) for c in columns], ["head"] * len(columns))]
    grid += [(t, ["first"] + [k for _, k in cols]) for t, (_, cols) in zip(texts, rows, strict=False)]
    for r, (cells, kinds) in enumerate(grid):
        y, x = top + r * row_h, 0.1
        for c, (text, kind) in enumerate(zip(cells, kinds, strict=False)):
            bg, fg = {"head": ("#f3f3f3", "#000000"), "first": ("#ffffff", "#000000")}.get(kind) \
                or CELL_COLOURS.get(kind, CELL_COLOURS["none"])
            ax.add_patch(Rectangle((x, y), widths[c], row_h, facecolor=bg, edgecolor="#cccccc", linewidth=0.8))
            ax.text(x + pad, y + row_h / 2, text, va="center", fontsize=9, color=fg,
                    fontweight="bold" if kind in ("head", "first") else "normal")
            x += widths[c]
    for i, line in enumerate(foot):
        ax.text(0.1, top + row_h * (len(rows) + 1) + 0.1 + 0.18 * i, line, va="top", fontsize=8, color="#444444")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
