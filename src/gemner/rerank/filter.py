"""Sample filter, paper §3.3.1: eq. 10 entropy and the gamma threshold.

An entity whose category distribution has entropy H > gamma is "hard" and goes to the reranker; the
others keep the recogniser's label. The recogniser computes H (`recognize.equations.entropy`, natural
log) and writes it as `scores.entropy`; the filter only reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import PAPER_GAMMA


def is_hard(entity_entropy: float, gamma: float = PAPER_GAMMA) -> bool:
    """Eq. 10's filter: strictly above the threshold goes to the reranker."""
    return entity_entropy > gamma


def entity_entropy(scores: Mapping[str, Any]) -> float | None:
    """The recogniser's `scores.entropy`, or None when it did not write one."""
    value = scores.get("entropy")
    if value is None:
        return None
    value = float(value)
    if math.isnan(value) or value < 0:
        raise ValueError(f"entropy must be a non-negative number, got {value}")
    return value


@dataclass(frozen=True)
class SampleFilter:
    """Which entities go to the reranker (H > gamma, or all with `rerank_all`), with their top-K candidates."""

    gamma: float = PAPER_GAMMA
    rerank_all: bool = False
    k: int = 5

    def candidates_for(self, scores: Mapping[str, Any]) -> list[str] | None:
        """The entity's top-K candidates when it goes to the reranker, else None."""
        from .candidates import inference_candidates

        topk = scores.get("topk")
        if not topk:
            return None
        if not self.rerank_all:
            h = entity_entropy(scores)
            if h is None or not is_hard(h, self.gamma):
                return None
        return inference_candidates(topk, self.k)
