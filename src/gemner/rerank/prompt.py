"""The reranking prompt of paper Table 7.

    Here's a tweet along with its image, where the entities of the text have been labeled using &&, and
    you need to determine his category from the candidate set.
    Text: The geometry of plants . Garfield(&&) Park(&&) Conservatory.
    Candidate: ["park", "continent", "city", "country", "software"].
    Answer: park

Every token of the entity is followed by `(&&)`; the tweet's tokens are joined by one space and the
template closes the line with "." (the paper's examples are FMNERG test posts 71044, 17_06_4452 and
110183, whose texts carry no final full stop). Multimodal models get the image in the user turn;
text-only models get a `Caption: ...` line after the text when a caption is known, and no caption line
when none is (this machine has no images, hence no captions). The instruction stays word for word.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.limits import CAPTION_CHARS, clip, context_window

INSTRUCTION = (
    "Here's a tweet along with its image, where the entities of the text have been labeled using &&, "
    "and you need to determine his category from the candidate set."
)
ENTITY_MARK = "(&&)"
# Layout for models without a chat template ("Query:" / "Answer:" as printed in Table 7).
PLAIN_QUERY_HEADER = "Query:\n"
PLAIN_ANSWER_HEADER = "\nAnswer:\n"


@dataclass(frozen=True)
class RerankQuery:
    """One entity to classify: its post's tokens, its span [start, end), the candidates, the context."""

    tokens: tuple[str, ...]
    start: int
    end: int
    candidates: tuple[str, ...]
    image: Path | Any | None = None  # a file, or an image already loaded (`gemner.data.images`)
    caption: str = ""
    answer: str | None = None  # the gold label, for training and accuracy

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= len(self.tokens):
            raise ValueError(f"entity span [{self.start}, {self.end}) is outside {len(self.tokens)} tokens")
        if len(self.candidates) == 0:
            raise ValueError("a rerank query needs at least one candidate")


def windowed_query(tokens: Sequence[str], start: int, end: int, candidates: Sequence[str],
                   image: Path | Any | None = None, caption: str = "") -> RerankQuery:
    """A query cut to the prompt limits of `gemner.data.limits`: at most RERANK_CONTEXT_WORDS tokens
    around the entity (the entity at most RERANK_ENTITY_WORDS), the caption at most CAPTION_CHARS."""
    if not 0 <= start < end <= len(tokens):
        raise ValueError(f"entity span [{start}, {end}) is outside {len(tokens)} tokens")
    left, end, right = context_window(len(tokens), start, end)
    return RerankQuery(tuple(tokens[left:right]), start - left, end - left, tuple(candidates), image=image,
                       caption=clip(caption, CAPTION_CHARS))


def mark_entity(tokens: Sequence[str], start: int, end: int) -> str:
    """The tweet with each entity token written `word(&&)` (Table 7)."""
    return " ".join(tok + ENTITY_MARK if start <= i < end else tok for i, tok in enumerate(tokens))


def format_candidates(candidates: Sequence[str]) -> str:
    """`Candidate: ["a", "b"].` with JSON quoting, exactly as Table 7 prints it."""
    return f"Candidate: {json.dumps(list(candidates), ensure_ascii=False)}."


def query_text(query: RerankQuery, with_caption: bool) -> str:
    """The user turn's text (without the image placeholder)."""
    lines = [INSTRUCTION, f"Text: {mark_entity(query.tokens, query.start, query.end)}."]
    if with_caption and query.caption.strip():
        lines.append(f"Caption: {query.caption.strip()}")
    lines.append(format_candidates(query.candidates))
    return "\n".join(lines)


# Paper Table 7's three worked examples, used as few-shot turns when `few_shot > 0`. They are FMNERG
# *test* posts: few-shot scores on FMNERG test therefore see these three labels (documented).
TABLE7_EXAMPLES: tuple[RerankQuery, ...] = (
    RerankQuery(tuple("The geometry of plants . Garfield Park Conservatory".split()), 5, 7,
                ("park", "continent", "city", "country", "software"), answer="park"),
    RerankQuery(tuple("Golden State Warriors win NBA championship against Cleveland Cavaliers".split()), 0, 3,
                ("company", "sports_team", "sports_league", "magazine", "social_organization"),
                answer="sports_team"),
    RerankQuery(tuple("RT @ AwkwardGoogle : Harry Potter".split()), 4, 6,
                ("author", "character", "coach", "event_other", "actor"), answer="character"),
)


def few_shot_examples(n: int) -> tuple[RerankQuery, ...]:
    if not 0 <= n <= len(TABLE7_EXAMPLES):
        raise ValueError(f"few_shot must be between 0 and {len(TABLE7_EXAMPLES)}, got {n}")
    return TABLE7_EXAMPLES[:n]
