"""Pictures of predictions: each image with its entities' boxes, labels and traced heat maps."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.types import PredictedEntity


def label_colour(label: str) -> tuple[int, int, int]:
    """A stable, well-saturated colour per label (the same type has the same colour in every picture)."""
    hue = int(hashlib.md5(label.encode("utf-8")).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def blend_heatmap(image: Image.Image, heatmap: np.ndarray, colour: tuple[int, int, int],
                  strength: float = 0.55) -> Image.Image:
    """Tint `image` by a [0, 1]-normalised heat map (any shape; resized to the image)."""
    heat = np.asarray(heatmap, dtype=np.float32)
    span = float(heat.max() - heat.min())
    heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    mask = Image.fromarray((heat * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0 * strength
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    tinted = base * (1 - alpha) + np.array(colour, dtype=np.float32) * alpha
    return Image.fromarray(tinted.clip(0, 255).astype(np.uint8))


def _caption(entity: PredictedEntity) -> str:
    itm = entity.scores.get("itm")
    return f"{entity.text} | {entity.type}" + (f" | P_T {itm:.2f}" if isinstance(itm, float) else "")


def draw_predictions(
    image: Image.Image,
    entities: Sequence[PredictedEntity],
    heatmaps: Mapping[int, np.ndarray] | None = None,
) -> Image.Image:
    """The image with every boxed entity drawn (box, caption, peak point) and heat maps blended in.

    `heatmaps` maps an entity's index in `entities` to its traced score map. Entities without a box
    are listed in a strip under the image, so the picture shows every prediction.
    """
    picture = image.convert("RGB")
    for index, heat in (heatmaps or {}).items():
        picture = blend_heatmap(picture, heat, label_colour(entities[index].type))
    font = ImageFont.load_default()
    unboxed = [e for e in entities if e.box is None]
    line_height = 14
    canvas = Image.new("RGB", (picture.width, picture.height + line_height * len(unboxed)), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(min(picture.size) / 150))
    for entity in entities:
        if entity.box is None:
            continue
        colour = label_colour(entity.type)
        x1, y1, x2, y2 = entity.box
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=width)
        text = _caption(entity)
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        label_y = y1 - (bottom - top) - 4 if y1 - (bottom - top) - 4 >= 0 else y1
        draw.rectangle((x1, label_y, x1 + right - left + 4, label_y + bottom - top + 4), fill=colour)
        draw.text((x1 + 2, label_y + 2), text, fill="black", font=font)
        peak = entity.scores.get("peak")
        if isinstance(peak, (list, tuple)) and len(peak) == 2:
            px, py = peak
            draw.ellipse((px - 2 * width, py - 2 * width, px + 2 * width, py + 2 * width), outline="white",
                         fill=colour, width=1)
    for row, entity in enumerate(unboxed):
        draw.text((4, picture.height + row * line_height + 1), f"{_caption(entity)} | not in the image"
                  if entity.box_status == "computed" else f"{_caption(entity)} | box not computed",
                  fill=label_colour(entity.type), font=font)
    return canvas


def save_picture(path: str | Path, image: Image.Image, entities: Sequence[PredictedEntity],
                 heatmaps: Mapping[int, np.ndarray] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_predictions(image, entities, heatmaps).save(path)
    return path
