"""Appendix E: choose gamma where the recogniser's and the reranker's precision curves cross.

Inputs: the recogniser's dev predictions, the same file reranked with `--all` (every entity has a
reranker choice) and the dev gold. Each predicted entity is an outcome: its entropy, whether the
recogniser's label is right (span and type match a gold entity), whether the reranker's is, and
whether the gold type was among the top-K candidates.

Entities are grouped into equal-count entropy bins (quantiles; explicit edges on request). In each bin,
precision = right / predicted for either model. The crossing gamma is where the difference
(reranker - recogniser) last changes from negative to non-negative, linearly interpolated between the
two bins' mean entropies. The best-threshold gamma, the one that maximises the combined system's dev
precision, is reported next to it and used when the curves never cross.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.issues import DataError, IssueLog
from ..data.types import Post
from .config import PAPER_K


@dataclass(frozen=True)
class Outcome:
    entropy: float
    base_correct: bool
    rerank_correct: bool
    gold_in_candidates: bool


@dataclass(frozen=True)
class BinStat:
    low: float
    high: float
    n: int
    mean_entropy: float
    base_precision: float
    rerank_precision: float
    topk_hit: float

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["high"] = None if math.isinf(self.high) else self.high  # JSON has no infinity
        return record


def collect_outcomes(gold_posts: Sequence[Post], predictions: Mapping[str, Sequence[Mapping[str, Any]]],
                     reranked: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[list[Outcome], int]:
    """Outcomes of every predicted entity with an entropy; also how many lacked a reranker choice."""
    gold = {post.id: {(e.start, e.end): e.type for e in post.entities} for post in gold_posts}
    outcomes, missing = [], 0
    for post_id, entities in predictions.items():
        truth = gold.get(post_id, {})
        choices = {(int(e["start"]), int(e["end"])): (e.get("scores") or {}).get("rerank")
                   for e in reranked.get(post_id, [])}
        for entity in entities:
            scores = entity.get("scores") or {}
            if scores.get("entropy") is None:
                continue
            span = (int(entity["start"]), int(entity["end"]))
            rerank = choices.get(span)
            if rerank is None:
                missing += 1
                rerank = {"choice": entity["type"], "candidates": [entity["type"]]}
            gold_type = truth.get(span)
            outcomes.append(Outcome(float(scores["entropy"]), gold_type == entity["type"],
                                    gold_type == rerank["choice"], gold_type in rerank.get("candidates", [])))
    return outcomes, missing


def quantile_edges(values: Sequence[float], n_bins: int) -> list[float]:
    """Equal-count bin edges (duplicates merged); the last edge is +inf."""
    ordered = sorted(values)
    if not ordered:
        return [0.0, math.inf]
    edges = [0.0]
    for i in range(1, n_bins):
        edge = ordered[min(len(ordered) - 1, round(i * len(ordered) / n_bins))]
        if edge > edges[-1]:
            edges.append(edge)
    return [*edges, math.inf]


def bin_outcomes(outcomes: Sequence[Outcome], edges: Sequence[float]) -> list[BinStat]:
    """Per-bin precision; bin i holds low <= H < high. Empty bins are left out."""
    bins = []
    for low, high in itertools.pairwise(edges):
        inside = [o for o in outcomes if low <= o.entropy < high]
        if not inside:
            continue
        n = len(inside)
        bins.append(BinStat(low, high, n, sum(o.entropy for o in inside) / n,
                            100 * sum(o.base_correct for o in inside) / n,
                            100 * sum(o.rerank_correct for o in inside) / n,
                            100 * sum(o.gold_in_candidates for o in inside) / n))
    return bins


def crossing_gamma(bins: Sequence[BinStat]) -> float | None:
    """Where (reranker - recogniser) precision last turns from negative to non-negative; None if never.
    When the reranker is at least as precise in every bin the answer is 0 (rerank everything)."""
    diffs = [b.rerank_precision - b.base_precision for b in bins]
    if diffs and all(d >= 0 for d in diffs):
        return 0.0
    crossing = None
    for i in range(1, len(bins)):
        before, after = diffs[i - 1], diffs[i]
        if before < 0 <= after:
            x0, x1 = bins[i - 1].mean_entropy, bins[i].mean_entropy
            crossing = x0 + (x1 - x0) * (-before) / (after - before)
    return crossing


def combined_precision(outcomes: Sequence[Outcome], gamma: float) -> float:
    """Precision of recogniser + SF + reranker at threshold gamma (H > gamma reranked)."""
    if not outcomes:
        return 0.0
    right = sum(o.rerank_correct if o.entropy > gamma else o.base_correct for o in outcomes)
    return 100 * right / len(outcomes)


def best_gamma(outcomes: Sequence[Outcome]) -> float:
    """The threshold (0 or an observed entropy) with the best combined precision; ties go to the
    smallest. Entities with H <= gamma keep the recogniser's label, as in `combined_precision`."""
    ordered = sorted(outcomes, key=lambda o: o.entropy)
    right = sum(o.rerank_correct for o in ordered)  # gamma below every entropy: rerank all
    best_right, best = right, 0.0
    for i, outcome in enumerate(ordered):
        right += outcome.base_correct - outcome.rerank_correct
        last_of_value = i + 1 == len(ordered) or ordered[i + 1].entropy > outcome.entropy
        if last_of_value and right > best_right:
            best_right, best = right, outcome.entropy
    return best


@dataclass
class Calibration:
    bins: list[BinStat]
    crossing: float | None
    best: float
    chosen: float
    n_entities: int
    missing_rerank: int

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen if math.isfinite(self.chosen) else None
        return {"chosen_gamma": chosen, "crossing_gamma": self.crossing, "best_gamma": self.best,
                "n_entities": self.n_entities, "missing_rerank": self.missing_rerank,
                "bins": [b.to_dict() for b in self.bins]}


def calibrate(outcomes: Sequence[Outcome], n_bins: int = 10, edges: Sequence[float] | None = None,
              missing_rerank: int = 0) -> Calibration:
    edges = list(edges) if edges is not None else quantile_edges([o.entropy for o in outcomes], n_bins)
    if edges[-1] != math.inf:
        edges.append(math.inf)
    bins = bin_outcomes(outcomes, edges)
    crossing = crossing_gamma(bins)
    best = best_gamma(outcomes)
    chosen = crossing if crossing is not None else best
    return Calibration(bins, crossing, best, chosen, len(outcomes), missing_rerank)


def calibrate_files(gold_posts: Sequence[Post], predictions: str | Path, reranked: str | Path, n_bins: int = 10,
                    edges: Sequence[float] | None = None, log: IssueLog | None = None) -> Calibration:
    """Appendix E from files: the recogniser's predictions and the same file reranked with `--all`
    against the gold posts (bad prediction lines go to `log`, with file and line)."""
    from ..data.userio import iter_prediction_records

    def entities_by_post(path: str | Path) -> dict[str, list[dict[str, Any]]]:
        return {str(record["id"]): list(record.get("entities") or [])
                for _, record in iter_prediction_records(path, log)}

    outcomes, missing = collect_outcomes(gold_posts, entities_by_post(predictions), entities_by_post(reranked))
    if not outcomes:
        raise DataError(f"{predictions}: no entity carries scores.entropy; nothing to calibrate")
    return calibrate(outcomes, n_bins, edges, missing)


def plot_calibration(calibration: Calibration, path: str, k: int = PAPER_K) -> str:
    """Appendix E's figure: precision per entropy bin for both models, top-K hit rate, chosen gamma."""
    from .plot import Series, line_chart

    xs = [b.mean_entropy for b in calibration.bins]
    series = [
        Series("recogniser", xs, [b.base_precision for b in calibration.bins], (31, 119, 180)),
        Series("reranker", xs, [b.rerank_precision for b in calibration.bins], (214, 39, 40)),
        Series(f"gold in top-{k}", xs, [b.topk_hit for b in calibration.bins], (120, 120, 120), dashed=True),
    ]
    line_chart(path, series, title="Precision per uncertainty bin (dev)", xlabel="entropy H (eq. 10)",
               ylabel="precision %", vline=calibration.chosen if math.isfinite(calibration.chosen) else None,
               vline_label=f"gamma = {calibration.chosen:.3f}", y_range=(0.0, 100.0))
    return path
