"""Gazetteer knowledge: what the training annotations say about the strings of a post.

A second knowledge source beside the LLM explanation of paper §3.2.1 (a named deviation, off in the
`paper` preset). Entity strings of the training split are memorised with their label counts and their
*link probability* (how often the string is an entity when it occurs in training text). For a post,
every string of the gazetteer found in it (greedy longest match, case-insensitive, link probability at
least `min_link`) is written as a hint such as `ted cruz: politician; jordan: athlete or brand name
products`, which travels to the encoder through the same `<SEP>` knowledge channel.

Train posts get hints from a gazetteer built on the *other* folds only (k-fold), so the recogniser never
learns to copy a hint that is always right on train but not on unseen text.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data.types import Post


@dataclass
class Gazetteer:
    labels: dict[tuple[str, ...], Counter[str]] = field(default_factory=dict)
    occurrences: Counter[tuple[str, ...]] = field(default_factory=Counter)
    max_length: int = 0

    @classmethod
    def fit(cls, posts: Iterable[Post]) -> Gazetteer:
        posts = list(posts)
        labels: dict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
        for post in posts:
            lowered = _lower(post.tokens)
            for entity in post.entities:
                labels[lowered[entity.start:entity.end]][entity.type] += 1
        max_length = max((len(k) for k in labels), default=0)
        occurrences: Counter[tuple[str, ...]] = Counter()
        for post in posts:
            lowered = _lower(post.tokens)
            for start in range(len(lowered)):
                for length in range(1, min(max_length, len(lowered) - start) + 1):
                    key = lowered[start:start + length]
                    if key in labels:
                        occurrences[key] += 1
        return cls(dict(labels), occurrences, max_length)

    def link_probability(self, key: tuple[str, ...]) -> float:
        return sum(self.labels[key].values()) / max(1, self.occurrences[key])

    def matches(self, tokens: Sequence[str], min_link: float) -> list[tuple[int, int, Counter[str]]]:
        """Greedy left-to-right longest matches whose link probability is at least `min_link`."""
        lowered, found, i = _lower(tokens), [], 0
        while i < len(lowered):
            for length in range(min(self.max_length, len(lowered) - i), 0, -1):
                key = lowered[i:i + length]
                if key in self.labels and self.link_probability(key) >= min_link:
                    found.append((i, i + length, self.labels[key]))
                    i += length
                    break
            else:
                i += 1
        return found

    def hint(self, tokens: Sequence[str], min_link: float = 0.3, min_share: float = 0.25) -> str:
        """`string: label or label; ...` for the post's matches (labels with at least `min_share`)."""
        parts = []
        for start, end, counts in self.matches(tokens, min_link):
            total = sum(counts.values())
            names = [label.replace("_", " ") for label, n in counts.most_common() if n / total >= min_share]
            parts.append(f"{' '.join(tokens[start:end]).lower()}: {' or '.join(names)}")
        return "; ".join(parts)


def _lower(tokens: Sequence[str]) -> tuple[str, ...]:
    return tuple(t.lower() for t in tokens)


def gazetteer_knowledge(
    train: Sequence[Post],
    others: Iterable[Post],
    folds: int = 5,
    seed: int = 13,
    min_link: float = 0.3,
) -> dict[str, str]:
    """Hints by post id: `others` (dev, test, user posts) from the full train gazetteer, train posts from
    the gazetteer of the other `folds - 1` folds."""
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    fold_of = {train[i].id: n % folds for n, i in enumerate(order)}
    hints: dict[str, str] = {}
    for fold in range(folds):
        held_out = [p for p in train if fold_of[p.id] == fold]
        gazetteer = Gazetteer.fit(p for p in train if fold_of[p.id] != fold)
        hints.update({p.id: gazetteer.hint(p.tokens, min_link) for p in held_out})
    full = Gazetteer.fit(train)
    hints.update({p.id: full.hint(p.tokens, min_link) for p in others})
    return hints


@dataclass(frozen=True)
class GazetteerFile:
    written: int
    with_hint: int


def write_gazetteer_knowledge(dataset: str, output: str | Path, *, posts: str | Path | None = None,
                              merge: str | Path | None = None, min_link: float = 0.3, folds: int = 5
                              ) -> GazetteerFile:
    """The knowledge JSONL of gazetteer hints for every split of `dataset` (and the user `posts`), each
    hint followed by the `merge` file's text for the post (e.g. the LLM explanation), keeping its caption."""
    from ..data import SPLITS, load_dataset
    from ..data.userio import read_knowledge, read_posts
    from .cache import Answer, ExportRow
    from .export import write_knowledge

    splits = {split: load_dataset(dataset, split).posts for split in SPLITS}
    others = splits["dev"] + splits["test"] + (read_posts(posts)[0] if posts else [])
    hints = gazetteer_knowledge(splits["train"], others, folds=folds, min_link=min_link)
    extra = read_knowledge(merge) if merge else {}
    rows = []
    for post_id, hint in hints.items():
        merged, caption = extra.get(post_id, ("", ""))
        text = " ".join(t for t in (hint, merged) if t)
        rows.append(ExportRow(post_id, "", caption, Answer(text, text, parsed=True, truncated=False, seconds=0.0)))
    summary = write_knowledge(rows, output)
    return GazetteerFile(summary.written, sum(1 for h in hints.values() if h))
