"""BIO tags <-> entity spans.

Decoding follows conlleval, which is also what the GMNER/FMNERG statistics use: an `I-x` that does
not continue an entity of type x (after `O`, at the start, or after another type) opens a new
entity. Callers that want to hear about such repairs pass `on_repair`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .schema import OUTSIDE

Span = tuple[int, int, str]  # [start, end) and label


def split_tag(tag: str) -> tuple[str, str | None]:
    """`"B-person"` -> `("B", "person")`; `"O"` -> `("O", None)`. Raises ValueError otherwise."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, label = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not label:
        raise ValueError(f"not a BIO tag: {tag!r}")
    return prefix, label


def tags_to_spans(
    tags: Sequence[str], on_repair: Callable[[int, str], None] | None = None
) -> list[Span]:
    """Entity spans of a BIO sequence. `on_repair(index, tag)` hears of each `I-` that opens an entity."""
    spans: list[Span] = []
    start: int | None = None
    label: str | None = None
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, tag_label = split_tag(tag)
        continues = prefix == "I" and start is not None and tag_label == label
        if continues:
            continue
        if start is not None:
            spans.append((start, i, label))  # type: ignore[arg-type]
            start = label = None
        if prefix != OUTSIDE:
            if prefix == "I" and on_repair is not None:
                on_repair(i, tag)
            start, label = i, tag_label
    return spans


def spans_to_tags(length: int, spans: Sequence[tuple[int, int, str]]) -> list[str]:
    """BIO tags of `length` tokens for non-overlapping spans (a later overlapping span is ignored)."""
    tags = [OUTSIDE] * length
    for start, end, label in sorted(spans):
        if start < 0 or end > length or start >= end or any(t != OUTSIDE for t in tags[start:end]):
            continue
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags
