"""The data model: posts, gold entities with their boxes, and predicted entities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple


class Box(NamedTuple):
    """An axis-aligned box in image pixels, (x1, y1) top-left and (x2, y2) bottom-right."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def iou(self, other: Box) -> float:
        """Intersection over union (continuous coordinates, as in the official scorers)."""
        ix = min(self.x2, other.x2) - max(self.x1, other.x1)
        iy = min(self.y2, other.y2) - max(self.y1, other.y1)
        if ix <= 0 or iy <= 0:
            return 0.0
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_list(self) -> list[float]:
        return [_plain_number(v) for v in self]

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> Box:
        if len(values) != 4:
            raise ValueError(f"a box needs 4 numbers [x1, y1, x2, y2], got {list(values)!r}")
        box = cls(*(float(v) for v in values))
        if not all(math.isfinite(v) for v in box):
            raise ValueError(f"a box needs finite numbers, got {list(values)!r}")
        return box


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True, slots=True)
class Entity:
    """A gold entity: tokens [start, end) of its post, its label(s) and its gold boxes.

    `type` is the main (finest) label: the fine type on FMNERG, the only type on GMNER.
    `boxes` is None when the entity is not groundable (absent from the image).
    """

    start: int
    end: int
    text: str
    type: str
    coarse: str
    boxes: tuple[Box, ...] | None = None

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def groundable(self) -> bool:
        return self.boxes is not None


@dataclass(slots=True)
class Post:
    """One post: tokens, optional image (path and size), and its gold entities (empty if unlabelled).

    A post made from raw text (`Post.from_text`) keeps that text in `raw_text` and each token's
    characters in it in `char_spans`; a post given as tokens has neither, and its character offsets
    then index the tokens joined by single spaces (`text`). `raw` is whichever string offsets index.
    """

    id: str
    tokens: list[str]
    entities: list[Entity] = field(default_factory=list)
    image: Path | None = None
    image_size: tuple[int, int] | None = None  # (width, height)
    raw_text: str | None = None
    char_spans: list[tuple[int, int]] | None = None

    def __post_init__(self) -> None:
        if (self.raw_text is None) != (self.char_spans is None):
            raise ValueError("a post's raw_text and char_spans go together")
        if self.char_spans is not None and len(self.char_spans) != len(self.tokens):
            raise ValueError(f"{len(self.char_spans)} char spans for {len(self.tokens)} tokens")

    @classmethod
    def from_text(cls, post_id: str, text: str, image: Path | None = None) -> Post:
        """A post of raw text, tokenised like the benchmark tweets, each token's characters kept."""
        from .tokenize import tokenize_with_offsets

        tokens, spans = tokenize_with_offsets(text)
        return cls(post_id, tokens, image=image, raw_text=text, char_spans=spans)

    @property
    def text(self) -> str:
        """The tokens joined by single spaces: the text the models read."""
        return " ".join(self.tokens)

    @property
    def raw(self) -> str:
        """The string character offsets index: the raw text the post came from, else `text`."""
        return self.raw_text if self.raw_text is not None else self.text

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        """[start_char, end_char) in `raw` of the tokens [start, end) (`tokenize.entity_char_span`)."""
        from .tokenize import entity_char_span, joined_spans

        spans = self.char_spans if self.char_spans is not None else joined_spans(self.tokens)
        return entity_char_span(self.raw, spans, start, end)

    def locate(self, entity: PredictedEntity) -> PredictedEntity:
        """The entity with its characters in `raw`: `start_char`, `end_char`, and `text` their slice."""
        start_char, end_char = self.char_span(entity.start, entity.end)
        return replace(entity, start_char=start_char, end_char=end_char, text=self.raw[start_char:end_char])


@dataclass(slots=True)
class PredictedEntity:
    """One predicted triple (span, type, box-or-None) with the evidence behind it.

    `start`/`end` are token indices (what the scorer matches). `start_char`/`end_char`, once the
    entity is located in its post (`Post.locate`), are characters of the post's `raw` string and
    `text` is that slice. `box_status` is "computed" when a grounder decided the box (None then
    means "not in the image") and "not_computed" when no grounder ran, so a missing box is never
    mistaken for a decision.
    """

    start: int
    end: int
    text: str
    type: str
    coarse: str
    box: Box | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    box_status: str = "computed"
    start_char: int | None = None
    end_char: int | None = None

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def score(self) -> float | None:
        """The recogniser's probability of the entity's type (from `scores.topk`); after reranking,
        of the type the reranker chose. None when the type is not among the recogniser's top k."""
        for label, probability in self.scores.get("topk") or ():
            if label == self.type:
                return float(probability)
        return None

    def to_json(self) -> dict[str, Any]:
        located = {"start_char": self.start_char, "end_char": self.end_char} if self.start_char is not None else {}
        return {
            "start": self.start,
            "end": self.end,
            **located,
            "text": self.text,
            "type": self.type,
            "coarse": self.coarse,
            "box": self.box.to_list() if self.box is not None else None,
            "box_status": self.box_status,
            "score": self.score,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, data: Any, n_tokens: int | None = None, raw: str | None = None) -> PredictedEntity:
        """Read `to_json()` back through the one entity validator (`records.EntityRecord`); a ValueError
        names what is wrong. `raw`: the string the character offsets index, to check them."""
        from .records import check_entity

        checked = check_entity(data, n_tokens=n_tokens, raw=raw)
        if isinstance(checked, str):
            raise ValueError(checked)
        return checked.to_entity()
