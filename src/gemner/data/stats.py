"""Per-split statistics with the conventions that reproduce the papers' Table 4 (data/README §5)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from .types import Post


@dataclass
class SplitStats:
    tweets: int
    entities: int
    groundable: int
    boxes: int  # gold boxes summed over groundable mentions (a repeated name counts once per mention)
    types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def split_stats(posts: list[Post]) -> SplitStats:
    entities = [e for post in posts for e in post.entities]
    grounded = [e for e in entities if e.groundable]
    return SplitStats(
        tweets=len(posts),
        entities=len(entities),
        groundable=len(grounded),
        boxes=sum(len(e.boxes or ()) for e in grounded),
        types=dict(Counter(e.type for e in entities).most_common()),
    )
