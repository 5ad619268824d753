"""Sample filter (the eq. 10 threshold; the entropy is tested in test_recognize_equations) and the Appendix E
gamma calibration, against hand-computed values."""

from __future__ import annotations

import math

import pytest
from PIL import Image

from gemner.data import Entity, Post
from gemner.rerank.calibrate import (
    Outcome,
    best_gamma,
    bin_outcomes,
    calibrate,
    collect_outcomes,
    combined_precision,
    crossing_gamma,
    plot_calibration,
    quantile_edges,
)
from gemner.rerank.filter import PAPER_GAMMA, entity_entropy, is_hard


def test_filter_is_strictly_above_gamma():
    assert PAPER_GAMMA == 0.2
    assert not is_hard(0.2)
    assert is_hard(0.2000001)
    assert not is_hard(0.0, gamma=0.0)
    assert is_hard(0.9, gamma=0.5)
    assert entity_entropy({"entropy": 0.3}) == 0.3
    assert entity_entropy({}) is None
    with pytest.raises(ValueError):
        entity_entropy({"entropy": -1})


def outcome(h: float, base: bool, rerank: bool, hit: bool = True) -> Outcome:
    return Outcome(h, base, rerank, hit)


def test_bins_and_crossing_by_hand():
    # Low entropy: recogniser right, reranker wrong half the time; high entropy: the reverse.
    outcomes = [outcome(0.05, True, True), outcome(0.1, True, False),  # bin [0, 0.5): 100 vs 50
                outcome(0.6, True, False), outcome(0.7, False, True),  # bin [0.5, 1): 50 vs 50
                outcome(1.2, False, True), outcome(1.4, False, True)]  # bin [1, inf): 0 vs 100
    bins = bin_outcomes(outcomes, [0.0, 0.5, 1.0, math.inf])
    assert [b.n for b in bins] == [2, 2, 2]
    assert [b.base_precision for b in bins] == [100.0, 50.0, 0.0]
    assert [b.rerank_precision for b in bins] == [50.0, 50.0, 100.0]
    assert [b.mean_entropy for b in bins] == pytest.approx([0.075, 0.65, 1.3])
    # diffs -50, 0, +100: turns non-negative between bin 0 (x=0.075) and bin 1 (x=0.65), at d=0 -> x=0.65
    assert crossing_gamma(bins) == pytest.approx(0.65)
    # gamma 0.1: base keeps 0.05, 0.1 (2 right), reranker takes 0.6 (wrong), 0.7, 1.2, 1.4 (right): 5/6
    assert combined_precision(outcomes, 0.1) == pytest.approx(100 * 5 / 6)
    # gamma 0.6: base keeps 0.05, 0.1, 0.6 (3 right), reranker takes the other three (right): 6/6, the best
    assert combined_precision(outcomes, 0.6) == pytest.approx(100.0)
    assert best_gamma(outcomes) == pytest.approx(0.6)
    assert combined_precision(outcomes, math.inf) == pytest.approx(100 * 3 / 6)


def test_crossing_interpolates_and_handles_one_sided_curves():
    bins = bin_outcomes([outcome(0.1, True, False), outcome(0.3, False, True)], [0.0, 0.2, math.inf])
    # diffs -100 at x=0.1 and +100 at x=0.3 -> zero half-way
    assert crossing_gamma(bins) == pytest.approx(0.2)
    always_better = bin_outcomes([outcome(0.1, False, True), outcome(0.3, True, True)], [0.0, 0.2, math.inf])
    assert crossing_gamma(always_better) == 0.0
    never_better = bin_outcomes([outcome(0.1, True, False), outcome(0.3, True, False)], [0.0, 0.2, math.inf])
    assert crossing_gamma(never_better) is None
    result = calibrate([outcome(0.1, True, False), outcome(0.3, True, False)], edges=[0.0, 0.2])
    assert result.crossing is None and result.chosen == result.best == 0.3  # falls back to best threshold


def test_quantile_edges_make_equal_count_bins():
    edges = quantile_edges([i / 10 for i in range(100)], 4)
    assert edges[0] == 0.0 and edges[-1] == math.inf and len(edges) == 5
    counts = [b.n for b in bin_outcomes([outcome(i / 10, True, True) for i in range(100)], edges)]
    assert counts == [25, 25, 25, 25]
    assert quantile_edges([0.0] * 10, 5) == [0.0, math.inf]  # duplicate edges merge


def test_collect_outcomes_joins_gold_predictions_and_reranked(tmp_path):
    gold = [Post("p1", ["Ted", "Cruz", "in", "Paris"],
                 [Entity(0, 2, "Ted Cruz", "politician", "person"), Entity(3, 4, "Paris", "city", "location")])]
    preds = {"p1": [
        {"start": 0, "end": 2, "type": "politician", "scores": {"entropy": 0.1}},
        {"start": 3, "end": 4, "type": "country", "scores": {"entropy": 0.9}},
        {"start": 2, "end": 3, "type": "city", "scores": {"entropy": 1.5}},  # wrong span
        {"start": 1, "end": 2, "type": "city", "scores": {}},  # no entropy: not an outcome
    ]}
    reranked = {"p1": [
        {"start": 0, "end": 2, "type": "actor", "scores": {"rerank": {"choice": "actor", "candidates": ["actor"]}}},
        {"start": 3, "end": 4, "type": "city",
         "scores": {"rerank": {"choice": "city", "candidates": ["country", "city"]}}},
    ]}
    outcomes, missing = collect_outcomes(gold, preds, reranked)
    assert missing == 1  # the wrong-span entity was not reranked
    assert outcomes == [Outcome(0.1, True, False, False), Outcome(0.9, False, True, True),
                        Outcome(1.5, False, False, False)]
    result = calibrate(outcomes, edges=[0.0, 0.5, 1.0])
    path = plot_calibration(result, str(tmp_path / "gamma.png"))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (760, 480)
        # the recogniser's curve colour is drawn somewhere
        assert (31, 119, 180) in {pixel for _, pixel in image.convert("RGB").getcolors(1 << 16)}
    payload = result.to_dict()
    assert payload["bins"][-1]["high"] is None and payload["n_entities"] == 3
