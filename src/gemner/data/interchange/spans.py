"""Character offsets of tokens and entities in a post's text (what spaCy and Label Studio address).

A predictions record always carries its tokens; a post that came from raw text also carries that
`text`, and its entities `start_char`/`end_char` into it. The text an export shows, and each span in it:

* the record's raw `text` when its tokens can be found in it in order with only whitespace between
  them (the tokenizer drops nothing else); an entity's own `start_char`/`end_char` are used when they
  lie inside that text, else its tokens' first and last characters;
* otherwise the tokens joined by single spaces, spans from the tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Offsets = list[tuple[int, int]]


def token_offsets(tokens: Sequence[str], text: str) -> Offsets | None:
    """(start, end) of each token in `text`, found in order; None when anything but whitespace lies
    between, before or after them (the tokens are then not a tokenization of that text)."""
    offsets: Offsets = []
    cursor = 0
    for token in tokens:
        start = text.find(token, cursor)
        if start < 0 or text[cursor:start].strip():
            return None
        offsets.append((start, start + len(token)))
        cursor = start + len(token)
    return offsets if not text[cursor:].strip() else None


def joined_offsets(tokens: Sequence[str]) -> Offsets:
    """Offsets of the tokens in `" ".join(tokens)`."""
    offsets, cursor = [], 0
    for token in tokens:
        offsets.append((cursor, cursor + len(token)))
        cursor += len(token) + 1
    return offsets


@dataclass(frozen=True)
class PostText:
    """The text an export shows for one post and where its tokens lie in it."""

    text: str
    offsets: Offsets
    raw: bool  # True: the post's own text; False: its tokens joined by single spaces

    def entity_chars(self, entity: Mapping[str, Any]) -> tuple[int, int] | None:
        """(start_char, end_char) of a predicted entity, or None when its span is not in the post."""
        if self.raw:
            start, end = entity.get("start_char"), entity.get("end_char")
            if _is_index(start) and _is_index(end) and 0 <= start < end <= len(self.text):
                return start, end
        start, end = entity.get("start"), entity.get("end")
        if not (_is_index(start) and _is_index(end)) or not 0 <= start < end <= len(self.offsets):
            return None
        return self.offsets[start][0], self.offsets[end - 1][1]


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def post_text(record: Mapping[str, Any]) -> PostText:
    """The `PostText` of a predictions record (see the module docstring for which text is used)."""
    tokens = [str(t) for t in record.get("tokens") or ()]
    raw = record.get("text")
    if isinstance(raw, str) and raw.strip():
        offsets = token_offsets(tokens, raw)
        if offsets is not None:
            return PostText(raw, offsets, raw=True)
    return PostText(" ".join(tokens), joined_offsets(tokens), raw=False)


def tokens_in_chars(offsets: Offsets, start: int, end: int) -> tuple[int, int] | None:
    """Token span [first, last + 1) of the tokens that overlap characters [start, end); None if none."""
    inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start]
    return (inside[0], inside[-1] + 1) if inside else None
