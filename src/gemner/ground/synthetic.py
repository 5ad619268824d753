"""Synthetic scenes with known answers: named objects at random places and sizes, with exact boxes.

Each scene is an RGB image holding a few named objects, each one of

* a coloured shape ("red circle", category "shape"): 6 colours x 4 shapes;
* a brand logo ("ACME", category "brand"): the word rendered on a plate of the brand's colour, as
  real logos keep their colours.

Boxes are exact: the bounding box of the pixels the object really covers (continuous pixel-edge
coordinates, x2/y2 exclusive). Objects never overlap, so every box is fully visible. A share of the
objects is *small*: under 1/50 of the image area, the paper's "fine-grained visual entity" subset.

Queries come with each scene: the present objects (label 1) and named objects absent from it
(label 0). A share of the absent ones (`swap_share`) are *attribute swaps* of present objects
("red square" when a red circle and a blue square are shown): a matcher must bind colour to shape
at one place to reject them, rather than count colours and shapes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.types import Box

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


@dataclass(frozen=True)
class SceneObject:
    name: str  # the entity text
    category: str  # "shape" | "brand"
    box: Box
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)  # (height, width) bool

    def contains(self, point: tuple[int, int]) -> bool:
        """Whether the pixel at (x, y) is one of the object's own pixels."""
        x, y = point
        if self.mask is None:
            return self.box.x1 <= x < self.box.x2 and self.box.y1 <= y < self.box.y2
        return bool(self.mask[y, x])

    def is_small(self, image_size: tuple[int, int]) -> bool:
        return self.box.area < SMALL_AREA_FRACTION * image_size[0] * image_size[1]


@dataclass(frozen=True)
class SceneQuery:
    """An entity asked about a scene; `present` says whether the scene holds it (a distractor when not)."""

    entity: str
    category: str
    present: bool


@dataclass
class Scene:
    image: Image.Image
    objects: list[SceneObject]
    queries: list[SceneQuery] = field(default_factory=list)

    def object_named(self, name: str) -> SceneObject | None:
        return next((obj for obj in self.objects if obj.name == name), None)


@dataclass(frozen=True)
class SceneSpec:
    size: int = 128
    min_objects: int = 2
    max_objects: int = 4
    small_share: float = 0.35  # share of objects drawn under 1/50 of the image
    negatives: int = 2  # absent named objects queried per scene
    swap_share: float = 0.5  # share of those negatives drawn from attribute swaps, when the scene has some
    noise: float = 6.0  # pixel noise (std, 0-255 scale), so colours are never perfectly flat
    distinct_colours: bool = False  # no two objects of a scene share a colour (an easier variant)
    colours: tuple[str, ...] = tuple(COLOURS)  # the vocabulary: subsets make smaller tasks
    shapes: tuple[str, ...] = SHAPES
    brands: tuple[str, ...] = tuple(BRANDS)


def vocabulary(spec: SceneSpec | None = None) -> list[tuple[str, str]]:
    """Every (entity, category) the scenes of `spec` can name."""
    spec = spec or SceneSpec()
    shapes = [(f"{colour} {shape}", "shape") for colour in spec.colours for shape in spec.shapes]
    return shapes + [(brand, "brand") for brand in spec.brands]


def _object_size(rng: random.Random, spec: SceneSpec, logo: bool) -> tuple[int, int]:
    """(width, height) of the object's frame; small ones stay under 1/50 of the image area."""
    limit = SMALL_AREA_FRACTION * spec.size * spec.size
    aspect = 2.0 if logo else 1.0
    if rng.random() < spec.small_share:
        side = rng.uniform(0.6, 0.97) * (limit / aspect) ** 0.5
    else:
        side = rng.uniform(1.05, 2.6) * (limit / aspect) ** 0.5
    return max(4, round(side * aspect)), max(4, round(side))


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, frame: tuple[int, int, int, int], fill) -> None:
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


def _draw_logo(draw: ImageDraw.ImageDraw, brand: str, frame: tuple[int, int, int, int]) -> None:
    plate, ink = BRANDS[brand]
    x1, y1, x2, y2 = frame
    draw.rectangle(frame, fill=plate)
    font = ImageFont.load_default(size=max(6, int((y2 - y1) * 0.8)))
    left, top, right, bottom = draw.textbbox((0, 0), brand, font=font)
    scale_fits = right - left <= x2 - x1
    if not scale_fits:  # very narrow plates: shrink the word until it fits
        font = ImageFont.load_default(size=max(4, int(font.size * (x2 - x1) / (right - left + 1))))
        left, top, right, bottom = draw.textbbox((0, 0), brand, font=font)
    tx = (x1 + x2 + 1 - (right - left)) / 2 - left
    ty = (y1 + y2 + 1 - (bottom - top)) / 2 - top
    draw.text((tx, ty), brand, fill=ink, font=font)


def _colour_of(name: str, category: str) -> str:
    return name.split(" ")[0] if category == "shape" else name


def _choose_objects(rng: random.Random, names: list[tuple[str, str]], count: int,
                    spec: SceneSpec) -> list[tuple[str, str]]:
    if not spec.distinct_colours:
        return rng.sample(names, count)
    chosen: list[tuple[str, str]] = []
    for name, category in rng.sample(names, len(names)):
        if all(_colour_of(name, category) != _colour_of(*other) for other in chosen):
            chosen.append((name, category))
        if len(chosen) == count:
            break
    return chosen


def _mask_box(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return Box(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def _background(rng: random.Random, spec: SceneSpec) -> np.ndarray:
    base = np.array(rng.choice(BACKGROUNDS), dtype=np.float32)
    # a gentle light gradient so that the background is not a single colour
    ramp = np.linspace(-1.0, 1.0, spec.size, dtype=np.float32)
    gx, gy = rng.uniform(-12, 12), rng.uniform(-12, 12)
    shade = gx * ramp[None, :] + gy * ramp[:, None]
    return np.broadcast_to(base, (spec.size, spec.size, 3)) + shade[..., None]


def _place(rng: random.Random, spec: SceneSpec, size: tuple[int, int],
           taken: np.ndarray) -> tuple[int, int, int, int] | None:
    """A frame (x1, y1, x2, y2 inclusive) that keeps a 2-pixel gap from every placed object."""
    width, height = size
    for _ in range(60):
        x1 = rng.randint(1, spec.size - width - 2)
        y1 = rng.randint(1, spec.size - height - 2)
        if not taken[max(0, y1 - 2): y1 + height + 2, max(0, x1 - 2): x1 + width + 2].any():
            return x1, y1, x1 + width - 1, y1 + height - 1
    return None


def make_scene(rng: random.Random, spec: SceneSpec = SceneSpec()) -> Scene:
    """One scene with exact boxes and its queries (present objects and absent named objects)."""
    canvas = _background(rng, spec).copy()
    taken = np.zeros((spec.size, spec.size), dtype=bool)
    names = vocabulary(spec)
    chosen = _choose_objects(rng, names, rng.randint(spec.min_objects, spec.max_objects), spec)
    objects: list[SceneObject] = []
    for name, category in chosen:
        size = _object_size(rng, spec, logo=category == "brand")
        frame = _place(rng, spec, size, taken)
        if frame is None:
            continue
        layer = Image.new("RGB", (spec.size, spec.size))
        alpha = Image.new("L", (spec.size, spec.size), 0)
        if category == "brand":
            _draw_logo(ImageDraw.Draw(layer), name, frame)
            ImageDraw.Draw(alpha).rectangle(frame, fill=255)
        else:
            colour, shape = name.split(" ")
            _draw_shape(ImageDraw.Draw(layer), shape, frame, COLOURS[colour])
            _draw_shape(ImageDraw.Draw(alpha), shape, frame, 255)
        mask = np.asarray(alpha) > 127
        box = _mask_box(mask)
        if box is None:
            continue
        canvas[mask] = np.asarray(layer, dtype=np.float32)[mask]
        taken |= mask
        objects.append(SceneObject(name, category, box, mask))
    pixel_rng = np.random.default_rng(rng.getrandbits(32))
    noisy = canvas + pixel_rng.normal(0.0, spec.noise, canvas.shape).astype(np.float32)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    scene = Scene(image, objects)
    scene.queries = _queries(rng, scene, spec)
    return scene


def _swaps(objects: list[SceneObject]) -> list[str]:
    """Names made of a colour and a shape that are both shown, but never on the same object."""
    colours = {obj.name.split(" ")[0] for obj in objects if obj.category == "shape"}
    shapes = {obj.name.split(" ")[1] for obj in objects if obj.category == "shape"}
    present = {obj.name for obj in objects}
    return sorted(f"{c} {s}" for c in colours for s in shapes if f"{c} {s}" not in present)


def _queries(rng: random.Random, scene: Scene, spec: SceneSpec) -> list[SceneQuery]:
    present = {obj.name for obj in scene.objects}
    queries = [SceneQuery(obj.name, obj.category, True) for obj in scene.objects]
    category_of = dict(vocabulary(spec))
    swaps = _swaps(scene.objects)
    absent = [name for name in category_of if name not in present]
    for _ in range(spec.negatives):
        pool = swaps if swaps and (rng.random() < spec.swap_share or not absent) else absent
        if not pool:
            break
        name = rng.choice(pool)
        if name in swaps:
            swaps.remove(name)
        if name in absent:
            absent.remove(name)
        queries.append(SceneQuery(name, category_of[name], False))
    return queries


def make_scenes(count: int, seed: int, spec: SceneSpec = SceneSpec()) -> list[Scene]:
    rng = random.Random(seed)
    return [make_scene(rng, spec) for _ in range(count)]
