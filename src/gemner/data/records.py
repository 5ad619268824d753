"""The one validator of records read from (and written to) JSONL files.

Every JSONL reader parses a line with `parse_json_line` and checks the object with one model here:
`PostRecord` (posts in), `FileRecord` with `EntityRecord` (predictions) or `GoldEntityRecord` (gold),
`KnowledgeRecord` and `BoxesRecord`. A record that is wrong in any way (a field of the wrong type, a
span outside its tokens, an inverted box, a NaN score, a string that is not valid Unicode) becomes a
one-line message naming the field and the value, never an exception; the reader reports it with file
and line and goes on. `PredictionWriter` callers build records with `prediction_record`, which checks
each entity with the same `EntityRecord`, so whatever is written reads back.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .jsonlines import post_id as _post_id
from .jsonlines import valid_unicode as _valid_unicode
from .schema import LabelSchema
from .types import Box, Entity, PredictedEntity


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def _finite_tree(value: Any) -> Any:
    # Iterative: a score nested a thousand levels deep must not overflow the stack.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, numbers.Real) and not isinstance(item, numbers.Integral) and not math.isfinite(item):
            raise ValueError(f"holds a non-finite number ({item})")
        if isinstance(item, str):
            _valid_unicode(item)
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return value


Text = Annotated[str, Strict(), AfterValidator(_valid_unicode)]
Name = Annotated[str, Strict(), AfterValidator(_valid_unicode), AfterValidator(_non_empty)]
PostId = Annotated[Any, AfterValidator(_post_id)]
Index = Annotated[int, Strict(), Field(ge=0)]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
BoxValues = Annotated[list[Number], Field(min_length=4, max_length=4)]
Pairs = list[tuple[Text, Number]]


class KnownScores(BaseModel):
    """The `scores` keys the stages read back (docs/ARCHITECTURE.md); any other key is kept as it is."""

    model_config = ConfigDict(extra="allow")

    entropy: Number | None = None
    itm: Number | None = None
    topk: Pairs | None = None
    coarse_topk: Pairs | None = None
    peak: Annotated[list[Number], Field(min_length=2, max_length=2)] | None = None
    rerank: dict[Text, Any] | None = None


def _known_scores(value: dict[str, Any]) -> dict[str, Any]:
    try:
        KnownScores.model_validate(value)
    except ValidationError as err:
        raise ValueError(problem(err)) from None
    return value


Scores = Annotated[dict[Text, Any], AfterValidator(_finite_tree), AfterValidator(_known_scores)]


def _box(values: list[float]) -> Box:
    box = Box(*values)
    if not (box.x1 < box.x2 and box.y1 < box.y2):
        raise ValueError(f"box {box.to_list()} is inverted or empty (needs x1 < x2 and y1 < y2)")
    return box


def _check_span(start: int, end: int, info: ValidationInfo) -> None:
    if start >= end:
        raise ValueError(f"span [{start}, {end}) is empty or inverted (needs start < end)")
    n_tokens = (info.context or {}).get("n_tokens")
    if n_tokens is not None and end > n_tokens:
        raise ValueError(f"span [{start}, {end}) ends past the post's {n_tokens} tokens")


def _known_type(label: str, info: ValidationInfo) -> str:
    schema: LabelSchema | None = (info.context or {}).get("schema")
    if schema is None:
        return label
    known = schema.canonical(label)
    if known is None:
        raise ValueError(f"unknown type {label!r} (schema {schema.name})")
    return known


class PostRecord(BaseModel):
    """A post of a posts JSONL: `{"id", "text" | "tokens", "image"?}` (other keys ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: PostId
    text: Text | None = None
    tokens: list[Name] | None = None
    image: Text | None = None


def _check_chars(start: int | None, end: int | None, text: str, info: ValidationInfo) -> None:
    """Character offsets come as a pair, 0 <= start_char < end_char <= len(raw), and the entity's
    text is their slice of the post's raw string when the context has it (`raw`)."""
    if start is None and end is None:
        return
    if start is None or end is None:
        raise ValueError("start_char and end_char go together")
    if start >= end:
        raise ValueError(f"characters [{start}, {end}) are empty or inverted (needs start_char < end_char)")
    raw: str | None = (info.context or {}).get("raw")
    if raw is None:
        return
    if end > len(raw):
        raise ValueError(f"characters [{start}, {end}) end past the post's {len(raw)} characters")
    if text and raw[start:end] != text:
        raise ValueError(f"text {_short(text)} is not the post's characters [{start}, {end}) "
                         f"({_short(raw[start:end])})")


class EntityRecord(BaseModel):
    """A predicted entity (`PredictedEntity.to_json()`). Validation context: `n_tokens` (the post's
    token count, checks the span end), `raw` (the string character offsets index: checks them and
    that `text` is their slice) and `schema` (checks and canonicalises the type). `score` is derived
    from `scores.topk` (`PredictedEntity.score`): checked to be a probability, not kept."""

    model_config = ConfigDict(extra="ignore")

    start: Index
    end: Index
    start_char: Index | None = None
    end_char: Index | None = None
    text: Text = ""
    type: Name
    coarse: Text | None = None
    box: BoxValues | None = None
    box_status: Literal["computed", "not_computed"] = "computed"
    score: Annotated[Number, Field(ge=0.0, le=1.0)] | None = None
    scores: Scores = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> EntityRecord:
        _check_span(self.start, self.end, info)
        _check_chars(self.start_char, self.end_char, self.text, info)
        if self.box is not None:
            _box(self.box)
        self.type = _known_type(self.type, info)
        return self

    def to_entity(self) -> PredictedEntity:
        return PredictedEntity(self.start, self.end, self.text, self.type, self.coarse or self.type,
                               Box(*self.box) if self.box is not None else None, dict(self.scores),
                               self.box_status, self.start_char, self.end_char)


class GoldEntityRecord(BaseModel):
    """A gold entity of a gold JSONL; needs the `schema` in the validation context."""

    model_config = ConfigDict(extra="ignore")

    start: Index
    end: Index
    text: Text = ""
    type: Name
    boxes: list[BoxValues] | None = None

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> GoldEntityRecord:
        _check_span(self.start, self.end, info)
        for box in self.boxes or ():
            _box(box)
        self.type = _known_type(self.type, info)
        return self

    def to_entity(self, schema: LabelSchema) -> Entity:
        boxes = tuple(Box(*b) for b in self.boxes) if self.boxes else None
        return Entity(self.start, self.end, self.text, self.type, schema.coarse_of[self.type], boxes)


class FileRecord(BaseModel):
    """One line of a predictions or gold JSONL, its entities still unchecked (each is checked on its own,
    so one bad entity costs only itself)."""

    model_config = ConfigDict(extra="allow")

    id: PostId
    tokens: list[Text] | None = None
    text: Text | None = None  # the raw text the entities' character offsets index, when not the joined tokens
    image: Text | None = None
    entities: list[Any] = Field(default_factory=list)
    error: Text | None = None
    image_size: Annotated[list[Annotated[int, Strict(), Field(gt=0)]], Field(min_length=2, max_length=2)] | None \
        = None


class KnowledgeRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: PostId
    knowledge: Text | None = None
    caption: Text | None = None


class BoxesRecord(BaseModel):
    """One image of a compact boxes JSONL (`voc.py`)."""

    model_config = ConfigDict(extra="ignore")

    id: PostId
    width: Annotated[int, Strict(), Field(gt=0)] | None = None
    height: Annotated[int, Strict(), Field(gt=0)] | None = None
    depth: Annotated[int, Strict(), Field(ge=0)] | None = None
    objects: list[tuple[Text, BoxValues]]


def problem(err: ValidationError) -> str:
    """A one-line account of what is wrong: the first error's field and value, and how many more."""
    errors = err.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if where and message.startswith('"'):  # a nested model's problem, already naming its field
        text = f'"{where}.{message[1:]}'
    elif where:
        text = f'"{where}": {message}'
        if first["type"] != "missing":
            text += f" (got {_short(first.get('input'))})"
    else:
        text = message
    if len(errors) > 1:
        text += f" (+{len(errors) - 1} more)"
    return text


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def offsets_text(record: FileRecord) -> str | None:
    """The string a record's character offsets index: its `text`, else its tokens joined by single
    spaces; None when it has neither."""
    if record.text is not None:
        return record.text
    return " ".join(record.tokens) if record.tokens is not None else None


def check_entity(data: Any, *, n_tokens: int | None = None, schema: LabelSchema | None = None,
                 raw: str | None = None) -> EntityRecord | str:
    """The entity checked, or the message saying why it is invalid. `raw`: the string its character
    offsets index (`offsets_text`), when known."""
    if not isinstance(data, dict):
        return f"an entity must be a JSON object, got {_short(data)}"
    try:
        return EntityRecord.model_validate(data, context={"n_tokens": n_tokens, "schema": schema, "raw": raw})
    except ValidationError as err:
        return problem(err)
