"""Drawing primitives for synthetic images with exact boxes: coloured shapes, brand logos, backgrounds.

Shared by the grounder's synthetic scenes (`gemner.ground.synthetic`) and the synthetic multimodal
benchmark (`gemner.data.synthetic`). A drawn object's box is the bounding box of the pixels it really
covers (continuous pixel-edge coordinates, x2/y2 exclusive); objects are placed with a 2-pixel gap, so
every box is fully visible.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .types import Box

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 50, 180),
    "orange": (245, 140, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond")
BRANDS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    # name: (plate colour, text colour)
    "ACME": ((20, 20, 20), (255, 255, 255)),
    "ZETA": ((250, 250, 250), (20, 20, 20)),
    "NOVA": ((240, 120, 190), (255, 255, 255)),
    "KIWI": ((120, 75, 35), (255, 240, 200)),
}
BACKGROUNDS = ((150, 150, 150), (175, 190, 175), (190, 180, 160), (110, 120, 135), (165, 160, 185))
SMALL_AREA_FRACTION = 1 / 50  # paper Table 2: a gold box under 1/50 of the image is fine-grained

Frame = tuple[int, int, int, int]  # x1, y1, x2, y2, inclusive pixel coordinates


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, frame: Frame, fill) -> None:
    x1, y1, x2, y2 = frame
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape == "circle":
        draw.ellipse(frame, fill=fill)
    elif shape == "square":
        draw.rectangle(frame, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y1), (x2, y2), (x1, y2)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y1), (x2, cy), (cx, y2), (x1, cy)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def draw_logo(draw: ImageDraw.ImageDraw, brand: str, frame: Frame) -> None:
    """The brand's word on a plate of the brand's colour, as real logos keep their colours."""
    plate, ink = BRANDS[brand]
    x1, y1, x2, y2 = frame
    draw.rectangle(frame, fill=plate)
    font = ImageFont.load_default(size=max(6, int((y2 - y1) * 0.8)))
    left, top, right, bottom = draw.textbbox((0, 0), brand, font=font)
    if right - left > x2 - x1:  # very narrow plates: shrink the word until it fits
        font = ImageFont.load_default(size=max(4, int(font.size * (x2 - x1) / (right - left + 1))))
        left, top, right, bottom = draw.textbbox((0, 0), brand, font=font)
    tx = (x1 + x2 + 1 - (right - left)) / 2 - left
    ty = (y1 + y2 + 1 - (bottom - top)) / 2 - top
    draw.text((tx, ty), brand, fill=ink, font=font)


def object_size(rng: random.Random, image_side: int, small: bool, logo: bool,
                largest: float | None = None) -> tuple[int, int]:
    """(width, height) of an object's frame; small ones stay under 1/50 of the image area, and large ones
    under `largest` of it when given."""
    limit = SMALL_AREA_FRACTION * image_side * image_side
    aspect = 2.0 if logo else 1.0
    # area = factor^2 * limit (before rounding down), so the largest factor keeps a large object under `largest`
    top = 2.6 if largest is None else min(2.6, 0.98 * (largest / SMALL_AREA_FRACTION) ** 0.5)
    factor = rng.uniform(0.6, 0.97) if small else rng.uniform(1.05, top)
    side = factor * (limit / aspect) ** 0.5
    return max(4, round(side * aspect)), max(4, round(side))


def background(rng: random.Random, image_side: int) -> np.ndarray:
    """A float (side, side, 3) canvas: one of BACKGROUNDS with a gentle light gradient."""
    base = np.array(rng.choice(BACKGROUNDS), dtype=np.float32)
    ramp = np.linspace(-1.0, 1.0, image_side, dtype=np.float32)
    gx, gy = rng.uniform(-12, 12), rng.uniform(-12, 12)
    shade = gx * ramp[None, :] + gy * ramp[:, None]
    return (np.broadcast_to(base, (image_side, image_side, 3)) + shade[..., None]).copy()


def place(rng: random.Random, image_side: int, size: tuple[int, int], taken: np.ndarray) -> Frame | None:
    """A frame that keeps a 2-pixel gap from every placed object (None when 60 tries find no room)."""
    width, height = size
    if width + 3 >= image_side or height + 3 >= image_side:
        return None
    for _ in range(60):
        x1 = rng.randint(1, image_side - width - 2)
        y1 = rng.randint(1, image_side - height - 2)
        if not taken[max(0, y1 - 2): y1 + height + 2, max(0, x1 - 2): x1 + width + 2].any():
            return x1, y1, x1 + width - 1, y1 + height - 1
    return None


def mask_box(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def paint(canvas: np.ndarray, taken: np.ndarray, frame: Frame, *, brand: str | None = None,
          shape: str | None = None, colour: str | None = None) -> tuple[Box, np.ndarray] | None:
    """Draw a brand logo (`brand`) or a coloured shape (`shape`, `colour`) into `frame` of `canvas`;
    marks its pixels in `taken` and returns (exact box, pixel mask), or None when nothing was drawn."""
    side = canvas.shape[0]
    layer = Image.new("RGB", (side, side))
    alpha = Image.new("L", (side, side), 0)
    if brand is not None:
        draw_logo(ImageDraw.Draw(layer), brand, frame)
        ImageDraw.Draw(alpha).rectangle(frame, fill=255)
    elif shape is not None and colour is not None:
        draw_shape(ImageDraw.Draw(layer), shape, frame, COLOURS[colour])
        draw_shape(ImageDraw.Draw(alpha), shape, frame, 255)
    else:
        raise ValueError("paint needs a brand, or a shape and a colour")
    mask = np.asarray(alpha) > 127
    box = mask_box(mask)
    if box is None:
        return None
    canvas[mask] = np.asarray(layer, dtype=np.float32)[mask]
    taken |= mask
    return box, mask


def finish(canvas: np.ndarray, rng: random.Random, noise: float) -> Image.Image:
    """The canvas with pixel noise (std `noise`, 0-255 scale), so colours are never perfectly flat."""
    pixel_rng = np.random.default_rng(rng.getrandbits(32))
    noisy = canvas + pixel_rng.normal(0.0, noise, canvas.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
