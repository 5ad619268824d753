"""A small line chart drawn with Pillow's ImageDraw (no plotting library needed)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 760, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 200, 40, 60


@dataclass(frozen=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: tuple[int, int, int]
    dashed: bool = False


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values covering [low, high]."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * step:
            step *= multiple
            break
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _dashed_line(draw: ImageDraw.ImageDraw, a: tuple[float, float], b: tuple[float, float],
                 color: tuple[int, int, int], width: int, dash: float = 8) -> None:
    length = math.dist(a, b)
    pieces = max(1, int(length // dash))
    for i in range(0, pieces, 2):
        t0, t1 = i / pieces, min(1.0, (i + 1) / pieces)
        draw.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                   (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=color, width=width)


def line_chart(path: str | Path, series: Sequence[Series], *, title: str, xlabel: str, ylabel: str,
               vline: float | None = None, vline_label: str = "", y_range: tuple[float, float] | None = None,
               ) -> Path:
    """Draw the series (points joined by lines) and an optional vertical marker; write a PNG."""
    xs = [x for s in series for x in s.xs] + ([vline] if vline is not None else [])
    ys = [y for s in series for y in s.ys]
    if not xs or not ys:
        raise ValueError("nothing to plot")
    x_low, x_high = min(0.0, min(xs)), max(xs) * 1.05 or 1.0
    y_low, y_high = y_range or (min(ys), max(ys))
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, right, top, bottom = MARGIN_LEFT, WIDTH - MARGIN_RIGHT, MARGIN_TOP, HEIGHT - MARGIN_BOTTOM

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x_low) / (x_high - x_low) * (right - left),
                bottom - (y - y_low) / ((y_high - y_low) or 1.0) * (bottom - top))

    font, small = _font(16), _font(12)
    draw.rectangle([left, top, right, bottom], outline="black")
    for tick in nice_ticks(x_low, x_high):
        x, _ = px(tick, y_low)
        draw.line([(x, bottom), (x, bottom + 5)], fill="black")
        draw.text((x, bottom + 8), f"{tick:g}", fill="black", font=small, anchor="mt")
    for tick in nice_ticks(y_low, y_high):
        _, y = px(x_low, tick)
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.line([(left, y), (right, y)], fill=(230, 230, 230))
        draw.text((left - 8, y), f"{tick:g}", fill="black", font=small, anchor="rm")
    draw.text(((left + right) / 2, 12), title, fill="black", font=font, anchor="mt")
    draw.text(((left + right) / 2, HEIGHT - 18), xlabel, fill="black", font=small, anchor="mm")
    draw.text((8, top - 20), ylabel, fill="black", font=small)
    for index, s in enumerate(series):
        points = [px(x, y) for x, y in zip(s.xs, s.ys, strict=True)]
        for a, b in itertools.pairwise(points):
            if s.dashed:
                _dashed_line(draw, a, b, s.color, 2)
            else:
                draw.line([a, b], fill=s.color, width=3)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=s.color)
        legend_y = top + 10 + 22 * index
        draw.line([(right + 15, legend_y), (right + 45, legend_y)], fill=s.color, width=3)
        draw.text((right + 52, legend_y), s.name, fill="black", font=small, anchor="lm")
    if vline is not None:
        x, _ = px(vline, y_low)
        _dashed_line(draw, (x, top), (x, bottom), (0, 0, 0), 1, dash=5)
        draw.text((x + 4, top + 4), vline_label, fill="black", font=small)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path
