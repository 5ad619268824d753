"""Truncated SVD (Eckart-Young): the best rank-r approximation of a weight change, as two factors.

Shared by the two checkpoint compressors (`recognize.compress`, `rerank.compress`).
"""

from __future__ import annotations

import torch


def low_rank_factors(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(left, right, kept): delta ~= left @ right with left [m, r], right [r, n]; `kept` is the share of
    ||delta||_F^2 the rank-r approximation keeps (sum of the r largest squared singular values)."""
    u, s, vh = torch.linalg.svd(delta.detach().float(), full_matrices=False)
    r = min(rank, s.numel())
    total = float((s ** 2).sum())
    kept = float((s[:r] ** 2).sum()) / total if total > 0 else 1.0
    return u[:, :r] * s[:r], vh[:r], kept
