"""A bar chart drawn with Pillow (the Fig. 3 ablation picture); no plotting library needed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..rerank.plot import nice_ticks


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def bar_chart(path: str | Path, labels: Sequence[str], values: Sequence[float | None], *, title: str,
              ylabel: str, highlight: int | None = 0, width: int = 760, height: int = 460) -> Path:
    """Vertical bars with their value on top; a None value is drawn as an empty slot marked "n/a"."""
    left, right, top, bottom = 70, 20, 66, 70  # title at 15, axis label just above the plot
    known = [v for v in values if v is not None]
    low = max(0.0, min(known) - 2) if known else 0.0  # scores are non-negative: never below 0
    high = max(known) + 1 if known else 1.0
    ticks = [t for t in nice_ticks(low, high) if t >= 0] or [0.0, 1.0]
    low, high = min(ticks[0], low), max(ticks[-1], high)  # round ticks start at or above the lowest bar
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    draw.text((left, 15), title, fill="black", font=_font(16))
    for tick in ticks:
        y = y_of(tick)
        draw.line((left, y, width - right, y), fill=(225, 225, 225))
        draw.text((left - 8, y), f"{tick:g}", fill="black", font=_font(12), anchor="rm")
    draw.text((left, top - 8), ylabel, fill="black", font=_font(12), anchor="ld")
    slot = plot_w / max(1, len(labels))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0, x1 = left + i * slot + slot * 0.2, left + (i + 1) * slot - slot * 0.2
        centre = (x0 + x1) / 2
        draw.text((centre, height - bottom + 12), label, fill="black", font=_font(12), anchor="mt")
        if value is None:
            draw.text((centre, top + plot_h - 12), "n/a", fill=(120, 120, 120), font=_font(12), anchor="mm")
            continue
        colour = (200, 80, 60) if i == highlight else (80, 120, 190)
        draw.rectangle((x0, y_of(value), x1, top + plot_h), fill=colour)
        draw.text((centre, y_of(value) - 4), f"{value:.2f}", fill="black", font=_font(12), anchor="mb")
    draw.line((left, top + plot_h, width - right, top + plot_h), fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
