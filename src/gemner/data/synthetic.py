"""A synthetic multimodal benchmark in the upstream FMNERG layout, with known answers (docs/synthetic.md).

`write_synthetic_benchmark(out, posts=..., seed=...)` writes::

    out/txt/{train,dev,test}.txt   CoNLL, `token<TAB>coarse<TAB>fine` (the FMNERG columns)
    out/xml/<id>.xml               one Pascal-VOC file per post (exact boxes of the drawn entities)
    out/images/<id>.jpg            one image per post
    out/knowledge.jsonl            the reference caption of every image (`{"id", "knowledge", "caption"}`)
    out/synthetic.json             the settings and counts

Every post holds entities of three kinds, so that each stage of GEM has something to do:

* *text entities* (one or two per post): the fine type is decided by the words around the name ("senator
  Ana Reyes" vs "a novel by Ana Reyes"); never drawn, gold box None;
* *logos* (half the posts): a brand drawn as a logo, often under 1/50 of the image; type decided by text;
* *look-alikes* (half the posts): a name whose type the text cannot decide. "Orion" is a company, a sports
  team, a band, an athlete, a musician or an actor. The emblem drawn beside it decides both levels: its
  shape the coarse type (a square or diamond badge for an organisation, a circle or triangle for a person),
  its colour the fine type. The reference caption names the shape, not the colour ("a large square"): the
  caption route gives a text-only model the coarse type, and only a model that sees the image the fine one.

About a third of all entities are drawn. Posts are drawn independently from one seeded generator.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from .drawing import BRANDS, SHAPES, SMALL_AREA_FRACTION, background, finish, object_size, paint, place
from .issues import DataError
from .types import Box

SPLIT_SHARES = (("train", 0.7), ("dev", 0.15), ("test", 0.15))
IMAGE_SIDE = 128
# No drawn object covers more than this share of the image. The centre-box baseline answers a box of a quarter
# of the image, and IoU(a, b) <= area(a) / area(b) = 1/2 for such an object, never the > 0.5 a hit needs: every
# drawn entity has to be localised, a centred guess scores none of them.
LARGEST_OBJECT_FRACTION = 1 / 8
EMBLEM_SIDES = (0.72, 0.99)  # a look-alike's emblem side, as shares of the largest square allowed
# coarse -> {fine: emblem colour}: the colour decides the fine type
LOOKALIKE_FAMILIES: dict[str, dict[str, str]] = {
    "organization": {"company": "blue", "sports_team": "green", "band": "purple"},
    "person": {"athlete": "red", "musician": "yellow", "actor": "orange"},
}
# coarse -> the emblem's possible shapes: the shape (which a caption names) decides the coarse type
EMBLEM_SHAPES: dict[str, tuple[str, ...]] = {"organization": ("square", "diamond"), "person": ("circle", "triangle")}
# every look-alike name can be any type of either family: the text decides neither level
LOOKALIKE_NAMES: tuple[str, ...] = ("Orion", "Vega", "Atlas", "Falcon", "Summit", "Harbor",
                                    "Jordan", "Morgan", "Taylor", "Casey", "Riley", "Quinn")
# the same words whatever the fine type: the text carries no evidence of it
LOOKALIKE_TEMPLATES = ("{} is everywhere today", "so proud of {} right now", "who else is watching {} tonight ?",
                       "{} just posted this", "can not stop talking about {}")
LOGO_TYPE = ("product", "brand_name_products")
LOGO_TEMPLATES = ("new {} gear arrived", "loving my {} bag", "{} sale starts now", "unboxing the {} kit")
# (coarse, fine) -> (names, templates): the fine type is in the context words, names are shared
TEXT_TYPES: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {
    ("person", "politician"): (("Ana Reyes", "Tom Hale", "Lia Park"), ("senator {} spoke today", "vote {} !")),
    ("person", "author"): (("Ana Reyes", "Tom Hale", "Lia Park"), ("a novel by {}", "{} signs her new book")),
    ("location", "city"): (("Lisbon", "Denver", "Kyoto"), ("downtown {} tonight", "live from the streets of {}")),
    ("location", "country"): (("Peru", "Norway", "Kenya"), ("the whole of {} votes", "the {} national anthem")),
    ("event", "festival"): (("Glowfest", "Sunburst"), ("tickets for {} festival sold out", "{} festival day two")),
    ("art", "music"): (("Blue Hour", "Night Drive"), ("{} on repeat , what a song", "the new single {}")),
}
OPENERS = ("RT @ user :", "", "", "wow", "#")


@dataclass(frozen=True)
class SyntheticEntity:
    name: str
    coarse: str
    fine: str
    kind: str  # "text" | "logo" | "lookalike"
    box: Box | None = None
    small: bool = False


@dataclass
class SyntheticPost:
    id: str
    tokens: list[str]
    tags: list[tuple[str, str]]  # (coarse BIO, fine BIO) per token
    entities: list[SyntheticEntity]
    caption: str
    image: Image.Image = field(repr=False)


@dataclass(frozen=True)
class SyntheticReport:
    folder: Path
    posts: dict[str, int]
    entities: int
    drawn: int
    small: int
    lookalikes: int

    def to_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder)}


def _split_sizes(posts: int) -> dict[str, int]:
    if posts < len(SPLIT_SHARES):
        raise DataError(f"a benchmark needs at least {len(SPLIT_SHARES)} posts (one per split), got {posts}")
    sizes = {split: max(1, round(share * posts)) for split, share in SPLIT_SHARES[1:]}
    return {"train": posts - sum(sizes.values()), **sizes}


def _clauses(rng: random.Random) -> list[tuple[str, str, str, str, str]]:
    """(template, name, coarse, fine, kind) for the entities of one post, in reading order."""
    chosen = rng.sample(sorted(TEXT_TYPES), 2)
    if chosen[0][0] == chosen[1][0] and set(TEXT_TYPES[chosen[0]][0]) & set(TEXT_TYPES[chosen[1]][0]):
        chosen = chosen[:1]  # one name string per post, so the string-matching scorer sees every entity
    clauses = []
    for coarse, fine in chosen:
        names, templates = TEXT_TYPES[(coarse, fine)]
        clauses.append((rng.choice(templates), rng.choice(names), coarse, fine, "text"))
    if rng.random() < 0.5:
        clauses.append((rng.choice(LOGO_TEMPLATES), rng.choice(sorted(BRANDS)), *LOGO_TYPE, "logo"))
    if rng.random() < 0.5:
        coarse = rng.choice(sorted(LOOKALIKE_FAMILIES))
        fine = rng.choice(sorted(LOOKALIKE_FAMILIES[coarse]))
        clauses.append((rng.choice(LOOKALIKE_TEMPLATES), rng.choice(LOOKALIKE_NAMES), coarse, fine, "lookalike"))
    rng.shuffle(clauses)
    return clauses


def _draw(rng: random.Random, entities: list[SyntheticEntity]) -> tuple[Image.Image, list[SyntheticEntity], str]:
    """The post's image; the entities with the boxes of the drawn ones; the reference caption."""
    canvas = background(rng, IMAGE_SIDE)
    taken = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    result = list(entities)
    said: list[str] = []
    # the look-alike's emblem first and as large as allowed, so that its colour survives a model's downscaling
    for index in sorted(range(len(entities)), key=lambda i: entities[i].kind != "lookalike"):
        entity = entities[index]
        if entity.kind == "lookalike":
            side = int(rng.uniform(*EMBLEM_SIDES) * LARGEST_OBJECT_FRACTION ** 0.5 * IMAGE_SIDE)
            frame = place(rng, IMAGE_SIDE, (side, side), taken)
            colour, shape = LOOKALIKE_FAMILIES[entity.coarse][entity.fine], rng.choice(EMBLEM_SHAPES[entity.coarse])
            drawn = paint(canvas, taken, frame, shape=shape, colour=colour) if frame else None
            words = f"a large {shape}"  # what a captioner says of it: the shape, not the colour
        elif entity.kind == "logo":
            small = rng.random() < 0.5
            size = object_size(rng, IMAGE_SIDE, small, logo=True, largest=LARGEST_OBJECT_FRACTION)
            frame = place(rng, IMAGE_SIDE, size, taken)
            drawn = paint(canvas, taken, frame, brand=entity.name) if frame else None
            words = f"a {'small ' if small else ''}{entity.name} logo"
        else:
            continue
        if drawn is None:
            continue
        box = drawn[0]
        result[index] = SyntheticEntity(entity.name, entity.coarse, entity.fine, entity.kind, box,
                                        box.area < SMALL_AREA_FRACTION * IMAGE_SIDE * IMAGE_SIDE)
        said.append(words)
    caption = " and ".join(said) if said else "an empty grey picture"
    return finish(canvas, rng, 6.0), result, caption


def caption_vocabulary() -> list[str]:
    """Every word a reference caption can hold, lower-cased, in a fixed order (`_draw` says no other)."""
    words = ["a", "large", *SHAPES, "and", "small", *BRANDS, "logo", "an", "empty", "grey", "picture"]
    return list(dict.fromkeys(word.lower() for word in words))


def entity_names() -> list[str]:
    """Every entity name a post can hold, in a fixed order."""
    text_names = [name for names, _ in TEXT_TYPES.values() for name in names]
    return list(dict.fromkeys([*text_names, *BRANDS, *LOOKALIKE_NAMES]))


def make_post(rng: random.Random, post_id: str) -> SyntheticPost:
    """One post: tokens with FMNERG tags, its entities (boxes for the drawn ones), image and caption."""
    tokens: list[str] = []
    tags: list[tuple[str, str]] = []
    entities: list[SyntheticEntity] = []
    opener = rng.choice(OPENERS).split()
    tokens += opener
    tags += [("O", "O")] * len(opener)
    for index, (template, name, coarse, fine, kind) in enumerate(_clauses(rng)):
        if index:
            tokens.append(".")
            tags.append(("O", "O"))
        before, after = (part.split() for part in template.split("{}"))
        words = name.split()
        tokens += [*before, *words, *after]
        tags += [("O", "O")] * len(before)
        tags += [(f"{'B' if i == 0 else 'I'}-{coarse}", f"{'B' if i == 0 else 'I'}-{fine}") for i in range(len(words))]
        tags += [("O", "O")] * len(after)
        entities.append(SyntheticEntity(name, coarse, fine, kind))
    image, entities, caption = _draw(rng, entities)
    return SyntheticPost(post_id, tokens, tags, entities, caption, image)


def _voc_xml(post: SyntheticPost, image_name: str) -> str:
    objects = "".join(
        f"<object><name>{escape(e.name)}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{int(e.box.x1)}</xmin><ymin>{int(e.box.y1)}</ymin>"
        f"<xmax>{int(e.box.x2)}</xmax><ymax>{int(e.box.y2)}</ymax></bndbox></object>\n"
        for e in post.entities if e.box is not None)
    return (f"<annotation><folder/><filename>{image_name}</filename><source><database>gemner synthetic"
            f"</database></source>\n<size><width>{IMAGE_SIDE}</width><height>{IMAGE_SIDE}</height><depth>3</depth>"
            f"</size><segmented>0</segmented>\n{objects}</annotation>\n")


def _conll(post: SyntheticPost) -> str:
    rows = "".join(f"{token}\t{coarse}\t{fine}\n" for token, (coarse, fine) in zip(post.tokens, post.tags, strict=True))
    return f"IMGID:{post.id}\n{rows}\n"


def _prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / "synthetic.json").is_file():
            raise DataError(f"{out} is not empty and holds no synthetic benchmark; choose a new folder")
        for sub in ("txt", "xml", "images"):
            shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("txt", "xml", "images"):
        (out / sub).mkdir(parents=True, exist_ok=True)


def write_synthetic_benchmark(out: str | Path, *, posts: int = 300, seed: int = 0) -> SyntheticReport:
    """Write the benchmark (`posts` in all, split 70/15/15) to `out`; the same seed gives the same files.
    `out` must be new, empty, or an earlier synthetic benchmark (then replaced, so no stale post stays)."""
    out = Path(out)
    _prepare(out)
    rng = random.Random(seed)
    counts: dict[str, int] = {}
    entities = drawn = small = lookalikes = 0
    number = 0
    with (out / "knowledge.jsonl").open("w", encoding="utf-8") as knowledge:
        for split, size in _split_sizes(posts).items():
            with (out / "txt" / f"{split}.txt").open("w", encoding="utf-8") as txt:
                for _ in range(size):
                    post = make_post(rng, f"syn_{number:06d}")
                    number += 1
                    txt.write(_conll(post))
                    post.image.save(out / "images" / f"{post.id}.jpg", quality=95)
                    (out / "xml" / f"{post.id}.xml").write_text(_voc_xml(post, f"{post.id}.jpg"), encoding="utf-8")
                    record = {"id": post.id, "knowledge": f"The image shows {post.caption}.", "caption": post.caption}
                    knowledge.write(json.dumps(record) + "\n")
                    entities += len(post.entities)
                    drawn += sum(e.box is not None for e in post.entities)
                    small += sum(e.small for e in post.entities)
                    lookalikes += sum(e.kind == "lookalike" for e in post.entities)
            counts[split] = size
    report = SyntheticReport(out, counts, entities, drawn, small, lookalikes)
    (out / "synthetic.json").write_text(json.dumps({"seed": seed, "posts": posts, **report.to_dict()}, indent=2))
    return report
