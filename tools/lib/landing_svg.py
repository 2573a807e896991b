"""Line plots as plain SVG text (log or linear axes, legend beside the plot), no dependency.

Every point is a ``<circle class="point">`` carrying the plotted number in ``data-value`` and a
``<title>`` tooltip, so a reader hovering sees the figure and a test can read back exactly what
was drawn. Colours are matplotlib's "tab10" cycle; baselines are drawn dashed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

__all__ = ["PlotPoint", "PlotSeries", "line_plot", "nice_log_ticks", "nice_linear_ticks"]

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
WIDTH, HEIGHT = 450, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 76
LEGEND_WIDTH = 235


@dataclass
class PlotPoint:
    x: float  # data units (for a categorical x axis: the position 0, 1, 2, ...)
    y: float
    tooltip: str
    value: str  # the number as the page states it, for data-value
    attrs: dict[str, str] = field(default_factory=dict)  # more attributes of its circle (data-src)


@dataclass
class PlotSeries:
    name: str
    points: list[PlotPoint] = field(default_factory=list)
    dashed: bool = False
    colour: str | None = None  # default: the next of COLOURS


def nice_log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 steps of each decade between ``low`` and ``high`` (both > 0); at least the two ends."""
    ticks = []
    for decade in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            value = step * 10.0 ** decade
            if low <= value * (1 + 1e-9) and value <= high * (1 + 1e-9):
                ticks.append(value)
    if len(ticks) > 8:  # many decades: the powers of ten alone
        ticks = [t for t in ticks if math.isclose(math.log10(t), round(math.log10(t)))]
    return ticks or [low, high]


def nice_linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round ticks (1, 2 or 5 times a power of ten apart) covering [low, high]."""
    span = high - low or abs(high) or 1.0
    raw = span / count
    base = 10.0 ** math.floor(math.log10(raw))
    step = next(m * base for m in (1, 2, 5, 10) if m * base >= raw)
    first = math.floor(low / step) * step
    return [first + i * step for i in range(int(math.ceil((high - first) / step)) + 1)]


def _label(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}K" if value % 1000 == 0 else f"{value:,.0f}"
    return f"{value:g}"


class _Axis:
    def __init__(self, low: float, high: float, log: bool, start: float, length: float, flip: bool):
        self.log, self.start, self.length, self.flip = log, start, length, flip
        self.low, self.high = (math.log10(low), math.log10(high)) if log else (low, high)
        if self.high == self.low:
            self.low, self.high = self.low - 0.5, self.high + 0.5

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        f = (v - self.low) / (self.high - self.low)
        return self.start + (1 - f if self.flip else f) * self.length


def _padded(low: float, high: float, log: bool) -> tuple[float, float]:
    if log:
        return low / 1.25, high * 1.25
    pad = (high - low) * 0.06 or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def line_plot(series: list[PlotSeries], *, x_label: str, y_label: str, x_log: bool = False,
              y_log: bool = False, x_ticks: list[tuple[float, str]] | None = None,
              y_from_zero: bool = False, reference_y: tuple[float, str] | None = None,
              rotate_x_labels: bool = False, description: str = "") -> str:
    """One SVG line plot of ``series``; ``x_ticks`` [(x, label)] replaces the automatic ticks
    (a categorical axis), ``reference_y`` draws a labelled horizontal line (e.g. ratio 1.0)."""
    xs = [p.x for s in series for p in s.points]
    ys = [p.y for s in series for p in s.points] + ([reference_y[0]] if reference_y else [])
    if not xs:
        raise ValueError("line_plot needs at least one point")
    y_low, y_high = _padded(min(ys), max(ys), y_log)
    if y_from_zero and not y_log:
        y_low = 0.0
    x_low, x_high = (min(xs), max(xs)) if x_ticks is None else (min(t[0] for t in x_ticks), max(t[0] for t in x_ticks))
    x_low, x_high = (x_low / 1.15, x_high * 1.15) if x_log else (x_low - 0.5, x_high + 0.5)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    fx = _Axis(x_low, x_high, x_log, LEFT, plot_w, False)
    fy = _Axis(y_low, y_high, y_log, TOP, plot_h, True)
    total_w = WIDTH + LEGEND_WIDTH
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{total_w}" height="{HEIGHT}" '
           f'viewBox="0 0 {total_w} {HEIGHT}" role="img" aria-label={quoteattr(description)} '
           f'font-family="sans-serif" font-size="11">',
           f'<title>{escape(description)}</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#999"/>']
    y_ticks = nice_log_ticks(y_low, y_high) if y_log else [
        t for t in nice_linear_ticks(y_low, y_high) if y_low <= t <= y_high]
    for t in y_ticks:
        y = fy(t)
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{LEFT - 5}" y="{y + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    if x_ticks is None:
        x_ticks = [(t, _label(t)) for t in (nice_log_ticks(min(xs), max(xs)) if x_log else
                                            nice_linear_ticks(min(xs), max(xs)))]
    for x_value, text in x_ticks:
        x = fx(x_value)
        label_y = TOP + plot_h + 14
        anchor = (f'text-anchor="end" transform="rotate(-40 {x:.1f} {label_y})"' if rotate_x_labels
                  else 'text-anchor="middle"')
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#f0f0f0"/>'
                   f'<text x="{x:.1f}" y="{label_y}" {anchor}>{escape(text)}</text>')
    if reference_y:
        y = fy(reference_y[0])
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#444" '
                   f'stroke-dasharray="2 3"/><text x="{LEFT + plot_w - 4}" y="{y - 4:.1f}" '
                   f'text-anchor="end" fill="#444">{escape(reference_y[1])}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 4}" text-anchor="middle">{escape(x_label)}</text>'
               f'<text transform="translate(12 {TOP + plot_h / 2}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    for i, s in enumerate(series):
        colour = s.colour or COLOURS[i % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        path = " ".join(f"{fx(p.x):.1f},{fy(p.y):.1f}" for p in s.points)
        out.append(f'<g class="series" data-name={quoteattr(s.name)}>'
                   f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for p in s.points:
            extra = "".join(f" {k}={quoteattr(v)}" for k, v in p.attrs.items())
            out.append(f'<circle class="point" cx="{fx(p.x):.1f}" cy="{fy(p.y):.1f}" r="3.5" '
                       f'fill="{colour}" data-value={quoteattr(p.value)}{extra}>'
                       f'<title>{escape(p.tooltip)}</title></circle>')
        ly = TOP + 8 + 17 * i
        out.append(f'<line x1="{WIDTH + 4}" x2="{WIDTH + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/><text x="{WIDTH + 34}" y="{ly + 4}">{escape(s.name)}</text></g>')
    out.append("</svg>")
    return "\n".join(out)
