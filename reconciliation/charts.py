"""Server-rendered SVG charts for the finance dashboard. Pure: no Flask, no database.

Integer arithmetic for every coordinate that comes from money (amounts are never floats);
labels are XML-escaped, so a merchant or channel name cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 16, 28
PALETTE = (
    "#1f77b4",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#d62728",
)


def _frame(title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title, {chr(34): "&quot;"})}" class="chart">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _short_amount(value: int) -> str:
    """`1.250.000` → `1,2 tr` style axis labels (Vietnamese: nghìn, triệu, tỷ)."""
    for size, unit in ((10**9, "tỷ"), (10**6, "tr"), (10**3, "N")):
        if value >= size:
            whole, part = divmod(value * 10 // size, 10)
            return f"{whole},{part} {unit}" if part else f"{whole} {unit}"
    return str(value)


def _axis(days: Sequence[date], top_label: str) -> list[str]:
    plot_bottom = HEIGHT - BOTTOM
    parts = [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{plot_bottom}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{plot_bottom}" x2="{WIDTH - RIGHT}" y2="{plot_bottom}" '
        'stroke="#999"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end" font-size="10">'
        f"{escape(top_label)}</text>",
        f'<text x="{LEFT - 4}" y="{plot_bottom}" text-anchor="end" font-size="10">0</text>',
    ]
    if days:
        for index in (0, len(days) - 1):
            x = _x(index, len(days))
            parts.append(
                f'<text x="{x}" y="{HEIGHT - 8}" text-anchor="middle" font-size="10">'
                f"{days[index]:%d/%m}</text>"
            )
    return parts


def _x(index: int, count: int) -> int:
    span = WIDTH - LEFT - RIGHT
    return LEFT + (span * (2 * index + 1)) // (2 * max(count, 1))


def volume_chart(title: str, days: Sequence[date], series: dict[str, list[int]]) -> str:
    """Stacked bars: money in per day, one colour per channel, with a legend."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    peak = max([*totals, 1])
    plot = HEIGHT - TOP - BOTTOM
    bar = max((WIDTH - LEFT - RIGHT) // max(len(days), 1) - 2, 1)
    body = _axis(days, _short_amount(peak))
    for n, name in enumerate(sorted(series)):
        colour = PALETTE[n % len(PALETTE)]
        body.append(
            f'<rect x="{WIDTH - RIGHT + 10}" y="{TOP + 14 * n}" width="10" height="10" '
            f'fill="{colour}"/><text x="{WIDTH - RIGHT + 24}" y="{TOP + 14 * n + 9}" '
            f'font-size="10">{escape(name)}</text>'
        )
    base = [0] * len(days)
    for n, (name, values) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        for i, value in enumerate(values):
            if value <= 0:
                continue
            height = max(value * plot // peak, 1)
            bottom = HEIGHT - BOTTOM - base[i] * plot // peak
            body.append(
                f'<rect class="bar" x="{_x(i, len(days)) - bar // 2}" y="{bottom - height}" '
                f'width="{bar}" height="{height}" fill="{colour}" data-channel="{escape(name)}">'
                f"<title>{days[i].isoformat()} {escape(name)}: {value}</title></rect>"
            )
            base[i] += value
    return _frame(title, body)


def rate_chart(title: str, days: Sequence[date], basis_points: Sequence[int | None]) -> str:
    """A line of the match rate per day (basis points: 10000 = 100 %); gaps where no run."""
    plot = HEIGHT - TOP - BOTTOM
    body = _axis(days, "100 %")
    points = []
    for i, value in enumerate(basis_points):
        if value is None:
            continue
        x, y = _x(i, len(days)), HEIGHT - BOTTOM - value * plot // 10_000
        points.append(f"{x},{y}")
        body.append(
            f'<circle class="point" cx="{x}" cy="{y}" r="3" fill="#2ca02c">'
            f"<title>{days[i].isoformat()}: {value // 100}.{value % 100:02d} %</title></circle>"
        )
    if len(points) > 1:
        body.insert(4, f'<polyline fill="none" stroke="#2ca02c" points="{" ".join(points)}"/>')
    return _frame(title, body)
