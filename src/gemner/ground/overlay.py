"""Heat-map overlay PNG: the traced eq. 11 map blended over the image, with the peak and the box.

Pillow and numpy only (no matplotlib): a jet-like colour ramp made of piecewise-linear channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..data.types import Box


def jet(values: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8, blue (low) through green to red (high)."""
    v = np.clip(values, 0.0, 1.0)
    red = np.clip(1.5 - np.abs(4.0 * v - 3.0), 0.0, 1.0)
    green = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0.0, 1.0)
    blue = np.clip(1.5 - np.abs(4.0 * v - 1.0), 0.0, 1.0)
    return (np.stack([red, green, blue], axis=-1) * 255).astype(np.uint8)


def normalised(heatmap: torch.Tensor | np.ndarray) -> np.ndarray:
    values = heatmap.float().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap, float)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def overlay_image(image: Image.Image, heatmap: torch.Tensor | np.ndarray, *,
                  peak: tuple[int, int] | None = None, box: Box | None = None,
                  alpha: float = 0.5) -> Image.Image:
    """The image with the heat map (resized to it if needed) blended in, the peak dotted, the box drawn."""
    base = image.convert("RGB")
    colours = Image.fromarray(jet(normalised(heatmap)))
    if colours.size != base.size:
        colours = colours.resize(base.size, Image.BILINEAR)
    blended = Image.blend(base, colours, alpha)
    draw = ImageDraw.Draw(blended)
    if box is not None:
        draw.rectangle([box.x1, box.y1, box.x2 - 1, box.y2 - 1], outline=(255, 255, 255), width=2)
    if peak is not None:
        radius = max(2, min(base.size) // 60)
        x, y = peak
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255), outline=(0, 0, 0))
    return blended


def save_overlay(path: str | Path, image: Image.Image, heatmap, **kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    overlay_image(image, heatmap, **kwargs).save(path, format="PNG")
    return path
