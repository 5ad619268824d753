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
from PIL import Image

from ..data.drawing import BRANDS, COLOURS, SHAPES, SMALL_AREA_FRACTION, background, finish, object_size, paint, place
from ..data.types import Box

__all__ = ["BRANDS", "COLOURS", "SHAPES", "SMALL_AREA_FRACTION", "Scene", "SceneObject", "SceneQuery", "SceneSpec",
           "make_scene", "make_scenes", "vocabulary"]

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


def make_scene(rng: random.Random, spec: SceneSpec = SceneSpec()) -> Scene:
    """One scene with exact boxes and its queries (present objects and absent named objects)."""
    canvas = background(rng, spec.size)
    taken = np.zeros((spec.size, spec.size), dtype=bool)
    names = vocabulary(spec)
    chosen = _choose_objects(rng, names, rng.randint(spec.min_objects, spec.max_objects), spec)
    objects: list[SceneObject] = []
    for name, category in chosen:
        small = rng.random() < spec.small_share
        size = object_size(rng, spec.size, small, logo=category == "brand")
        frame = place(rng, spec.size, size, taken)
        if frame is None:
            continue
        if category == "brand":
            drawn = paint(canvas, taken, frame, brand=name)
        else:
            colour, shape = name.split(" ")
            drawn = paint(canvas, taken, frame, shape=shape, colour=colour)
        if drawn is not None:
            objects.append(SceneObject(name, category, *drawn))
    scene = Scene(finish(canvas, rng, spec.noise), objects)
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
