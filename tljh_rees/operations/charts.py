"""Charts for the admin's dashboard, drawn on the server as inline SVG.

No script and no library: each function returns an ``<svg>`` element (a string of
well-formed XML) with ``role="img"``, an ``aria-label`` saying what it shows, and a
``<title>`` on every point and bar. Every text from data is escaped. Colours are CSS
classes (``rees-chart-*`` in rees.css, from the Hub's Bootstrap variables, so dark mode
works), with plain fill/stroke attributes as a fallback.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from markupsafe import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 12, 28  # the plot's margins
FALLBACK = {"built": "#198754", "failed": "#dc3545", "cancelled": "#6c757d",
            "line": "#0d6efd", "high": "#dc3545", "low": "#fd7e14", "bar": "#0d6efd",
            "axis": "#6c757d"}


def _e(text) -> str:
    return str(escape(str(text)))


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100); None of no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _nice_max(value: float) -> float:
    """A round number at least ``value`` for the top of an axis."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 < value:
        step *= 10
    while step > value * 10:
        step /= 10
    for m in (1, 2, 2.5, 5, 10):
        if step * m >= value:
            return step * m
    return step * 10


class _Frame:
    """Maps (time, value) to the plot's pixels and draws its axes."""

    def __init__(self, start: datetime, end: datetime, y_max: float, y_unit: str):
        self.start, self.end = start, end
        self.span = max((end - start).total_seconds(), 1.0)
        self.y_max = y_max
        self.y_unit = y_unit
        self.w = WIDTH - LEFT - RIGHT
        self.h = HEIGHT - TOP - BOTTOM

    def x(self, moment: datetime) -> float:
        offset = (moment - self.start).total_seconds() / self.span
        return round(LEFT + min(max(offset, 0.0), 1.0) * self.w, 1)

    def y(self, value: float) -> float:
        share = min(max(value / self.y_max, 0.0), 1.0) if self.y_max else 0.0
        return round(TOP + self.h - share * self.h, 1)

    def axes(self) -> list[str]:
        parts = [f'<g class="rees-chart-axis" stroke="{FALLBACK["axis"]}" '
                 f'fill="{FALLBACK["axis"]}" font-size="11">',
                 f'<line x1="{LEFT}" y1="{TOP + self.h}" x2="{LEFT + self.w}" '
                 f'y2="{TOP + self.h}"/>',
                 f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + self.h}"/>']
        for i in range(5):  # value ticks
            value = self.y_max * i / 4
            y = self.y(value)
            parts.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" '
                         f'stroke="none">{_e(_tick(value))}{_e(self.y_unit)}</text>')
        long = self.span > 2 * 86400
        for i in range(5):  # time ticks
            moment = self.start + timedelta(seconds=self.span * i / 4)
            label = moment.strftime("%a %d %H:%M" if long else "%H:%M")
            anchor = "start" if i == 0 else "end" if i == 4 else "middle"
            parts.append(f'<text x="{self.x(moment)}" y="{HEIGHT - 8}" '
                         f'text-anchor="{anchor}" stroke="none">{_e(label)}</text>')
        parts.append("</g>")
        return parts


def _tick(value: float) -> str:
    return f"{value:g}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _svg(label: str, body: list[str], height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="rees-chart" role="img" '
            f'viewBox="0 0 {WIDTH} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
            f'aria-label="{_e(label)}"><title>{_e(label)}</title>{"".join(body)}</svg>')


def duration_chart(builds: list[tuple[datetime, float, str, str]], start: datetime,
                   end: datetime, label: str) -> str:
    """Builds as points: (when it finished, seconds it took, status, text for its title),
    one ``<circle>`` each, coloured by status."""
    top = _nice_max(max((b[1] for b in builds), default=60.0))
    unit, scale = ("min", 60.0) if top >= 600 else ("s", 1.0)
    frame = _Frame(start, end, _nice_max(top / scale), f" {unit}" if unit == "min" else " s")
    body = frame.axes()
    for finished, seconds, status, title in builds:
        status = status if status in ("built", "failed", "cancelled") else "cancelled"
        body.append(
            f'<circle class="rees-chart-point rees-chart-{status}" cx="{frame.x(finished)}" '
            f'cy="{frame.y(seconds / scale)}" r="4.5" fill="{FALLBACK[status]}" '
            f'fill-opacity="0.75">'
            f'<title>{_e(title)}</title></circle>')
    return _svg(label, body)


def line_chart(points: list[tuple[datetime, float]], start: datetime, end: datetime,
               label: str, unit: str = "", y_max: float | None = None,
               lines: list[tuple[float, str, str]] = ()) -> str:
    """A value over time: one ``<polyline>`` through every point, and horizontal
    reference lines (value, css name, text) such as the GC's watermarks."""
    top = y_max if y_max is not None else _nice_max(max((p[1] for p in points), default=1.0))
    frame = _Frame(start, end, top, unit)
    body = frame.axes()
    for value, name, text in lines:
        y = frame.y(value)
        body.append(f'<g class="rees-chart-{_e(name)}" stroke="{FALLBACK.get(name, "#888")}" '
                    f'fill="{FALLBACK.get(name, "#888")}">'
                    f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" '
                    f'stroke-dasharray="6 4"/>'
                    f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4}" text-anchor="end" '
                    f'font-size="11" stroke="none">{_e(text)}</text></g>')
    if points:
        coords = " ".join(f"{frame.x(at)},{frame.y(v)}" for at, v in points)
        body.append(f'<polyline class="rees-chart-line" fill="none" '
                    f'stroke="{FALLBACK["line"]}" stroke-width="2" points="{coords}"/>')
        at, value = points[-1]  # the latest, visible even when it is the only one
        body.append(f'<circle class="rees-chart-last" cx="{frame.x(at)}" cy="{frame.y(value)}" '
                    f'r="3.5" fill="{FALLBACK["line"]}"><title>{_e(_tick(value))}{_e(unit)} '
                    f'at {at:%Y-%m-%d %H:%M} UTC</title></circle>')
    return _svg(label, body)


def bar_list(items: list[tuple[str, float]], label: str, unit: str = "") -> str:
    """Horizontal bars, one ``<rect>`` per (name, value), longest first as given."""
    row, name_width = 26, 200
    height = max(row * len(items) + 8, 34)
    top = max((v for _, v in items), default=1.0) or 1.0
    span = WIDTH - name_width - 80
    body = []
    for i, (name, value) in enumerate(items):
        y = 4 + i * row
        width = round(max(value / top * span, 1.0), 1)
        shown = name if len(name) <= 28 else name[:27] + "…"
        body.append(
            f'<g class="rees-chart-bar-row"><text x="{name_width - 8}" y="{y + 16}" '
            f'text-anchor="end" font-size="12" class="rees-chart-text">{_e(shown)}</text>'
            f'<rect class="rees-chart-bar" x="{name_width}" y="{y + 3}" width="{width}" '
            f'height="{row - 8}" fill="{FALLBACK["bar"]}"><title>{_e(name)}: '
            f'{_e(_tick(value))}{_e(unit)}</title></rect>'
            f'<text x="{name_width + width + 6}" y="{y + 16}" font-size="12" '
            f'class="rees-chart-text">{_e(_tick(value))}{_e(unit)}</text></g>')
    return _svg(label, body, height=height)
