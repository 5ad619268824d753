"""The data model: posts, gold entities with their boxes, and predicted entities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    """One post: tokens, optional image (path and size), and its gold entities (empty if unlabelled)."""

    id: str
    tokens: list[str]
    entities: list[Entity] = field(default_factory=list)
    image: Path | None = None
    image_size: tuple[int, int] | None = None  # (width, height)

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


@dataclass(slots=True)
class PredictedEntity:
    """One predicted triple (span, type, box-or-None) with the evidence behind it.

    `box_status` is "computed" when a grounder decided the box (None then means "not in the image")
    and "not_computed" when no grounder ran, so a missing box is never mistaken for a decision.
    """

    start: int
    end: int
    text: str
    type: str
    coarse: str
    box: Box | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    box_status: str = "computed"

    @property
    def span(self) -> tuple[int, int]:
        return (self.start, self.end)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "type": self.type,
            "coarse": self.coarse,
            "box": self.box.to_list() if self.box is not None else None,
            "box_status": self.box_status,
            "scores": self.scores,
        }

    @classmethod
    def from_json(cls, data: Any, n_tokens: int | None = None) -> PredictedEntity:
        """Read `to_json()` back through the one entity validator (`records.EntityRecord`); a ValueError
        names what is wrong."""
        from .records import check_entity

        checked = check_entity(data, n_tokens=n_tokens)
        if isinstance(checked, str):
            raise ValueError(checked)
        return checked.to_entity()
