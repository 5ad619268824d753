"""Sample filter, paper §3.3.1: eq. 10 entropy and the gamma threshold.

An entity whose category distribution has entropy H > gamma is "hard" and goes to the reranker; the
others keep the recogniser's label. The recogniser computes H (`recognize.equations.entropy`, natural
log) and writes it as `scores.entropy`; the filter only reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
