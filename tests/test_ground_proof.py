"""The grounding path proven on synthetic scenes (small version of `gemner ground synthetic`).

A tiny BLIP-architecture ITM is trained from scratch on scene-level labels only (is the named
object in the image?), never on boxes; the traced peaks and the boxes built from them must then find
the named objects on held-out scenes, far better than a centre-box baseline.
"""

from __future__ import annotations

import pytest

from gemner.ground.proof import PROOF_PRESETS, run_proof


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    return run_proof(PROOF_PRESETS["small"], save_to=tmp_path_factory.mktemp("proof-itm"))


def test_traced_peaks_fall_inside_the_named_objects(proof):
    assert proof.counts["present"] >= 400 and proof.counts["small"] >= 100
    assert proof.metrics["peak_in_box"] >= 0.80


def test_weight_free_boxes_meet_the_target_and_beat_the_centre_baseline(proof):
    metrics = proof.metrics
    assert metrics["iou50_region"] >= 0.70
    assert metrics["iou50_region_gated"] >= 0.70  # end to end, with the ITM deciding relevance
    assert metrics["iou50_centre"] < 0.10
    assert metrics["iou50_region_small"] > metrics["iou50_centre_small"] + 0.4


def test_itm_learned_relevance(proof):
    assert proof.metrics["itm_accuracy"] >= 0.75


def test_table_reports_every_method(proof):
    table = proof.table()
    for label in ("centre box", "region growing", "heat-map component", "end to end"):
        assert label in table
