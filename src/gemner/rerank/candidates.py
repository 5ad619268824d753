"""Candidate sets, paper §3.3.2.

Inference: the recogniser's top-K fine categories. Training: the gold label, K-2 other fine labels of
the gold's coarse type and one label of a different coarse type, shuffled.

Where the gold's coarse type has fewer than K-2 siblings (FMNERG `event` has 2 for K = 5), the
shortfall is filled with further labels of other coarse types, so a training set always holds K
distinct labels, as at inference. A flat schema (GMNER) has no coarse level: the gold plus K-1 other
labels drawn uniformly (the whole label set when K >= its size, as the paper does for GMNER).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data.schema import LabelSchema


def inference_candidates(topk: Sequence[Sequence], k: int) -> list[str]:
    """The first K labels of the recogniser's `scores.topk` (`[[label, prob], ...]`, descending)."""
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}")
    labels: list[str] = []
    for item in topk:
        label = str(item[0])
        if label not in labels:
            labels.append(label)
        if len(labels) == k:
            break
    return labels


def training_candidates(gold: str, schema: LabelSchema, k: int, rng: random.Random,
                        pool: Sequence[str] | None = None) -> list[str]:
    """Gold + K-2 same-coarse labels + 1 other-coarse label, shuffled with `rng` (see module doc). The
    other labels are drawn from `pool` (default: every label of the schema, as the paper does)."""
    if gold not in schema.coarse_of:
        raise ValueError(f"label {gold!r} is not in schema {schema.name}")
    allowed = set(schema.labels if pool is None else pool)
    labels = [label for label in schema.labels if label in allowed]
    k = min(k, len({*labels, gold}))
    if k < 1:
        raise ValueError("K must be at least 1")
    others = [label for label in labels if label != gold]
    if not schema.hierarchical:
        chosen = rng.sample(others, k - 1)
    else:
        coarse = schema.coarse_of[gold]
        siblings = [label for label in others if schema.coarse_of[label] == coarse]
        strangers = [label for label in others if schema.coarse_of[label] != coarse]
        n_siblings = min(max(k - 2, 0), len(siblings))
        chosen = rng.sample(siblings, n_siblings)
        chosen += rng.sample(strangers, min(k - 1 - n_siblings, len(strangers)))
        spare = [label for label in siblings if label not in chosen]  # no other coarse type in a small pool
        chosen += rng.sample(spare, min(k - 1 - len(chosen), len(spare)))
    candidates = [gold, *chosen]
    rng.shuffle(candidates)
    return candidates
