"""Hand-made cases for every scoring rule (data/README §7.1, §7.4), and gold against itself."""

from __future__ import annotations

import pytest

from gemner.data import DATASETS, FMNERG_SCHEMA, GMNER_SCHEMA, Box, Entity, Post, PredictedEntity, load_dataset
from gemner.evaluation import gold_as_predictions, region_correct, score
from gemner.evaluation.scorer import is_fine_visual

GOLD_BOX = Box(0, 0, 10, 10)


def _post(*entities: Entity, size=(100, 100)) -> Post:
    return Post("p", ["w"] * 10, list(entities), image_size=size)


def _gold(start, end, label="PER", boxes=None) -> Entity:
    return Entity(start, end, f"e{start}", label, label, boxes)


def _pred(start, end, label="PER", box=None) -> PredictedEntity:
    return PredictedEntity(start, end, f"e{start}", label, label, box)


def test_iou_exactly_half_does_not_count() -> None:
    half = Box(0, 0, 10, 5)  # intersection 50, union 100
    assert GOLD_BOX.iou(half) == pytest.approx(0.5)
    assert not region_correct(half, [GOLD_BOX])
    assert region_correct(Box(0, 0, 10, 5.1), [GOLD_BOX])


def test_match_on_the_second_gold_box_counts() -> None:
    second = Box(50, 50, 60, 60)
    assert region_correct(Box(51, 50, 60, 60), [GOLD_BOX, second])


def test_none_matches_only_none() -> None:
    assert region_correct(None, None)
    assert not region_correct(GOLD_BOX, None)
    assert not region_correct(None, [GOLD_BOX])


def test_mner_eeg_mnerg_counts_by_hand() -> None:
    gold = _post(_gold(0, 2, "PER", (GOLD_BOX,)), _gold(3, 4, "LOC"), _gold(5, 6, "ORG"))
    pred = [
        _pred(0, 2, "PER", Box(1, 1, 10, 10)),  # all right
        _pred(3, 4, "ORG", None),  # wrong type, right region -> EEG only
        _pred(5, 6, "ORG", GOLD_BOX),  # right type, wrong region (gold None) -> MNER only
        _pred(7, 9, "PER", None),  # spurious
    ]
    report = score([gold], {"p": pred}, GMNER_SCHEMA)
    assert (report.mner.tp, report.mner.n_pred, report.mner.n_gold) == (2, 4, 3)
    assert (report.eeg.tp, report.mnerg.tp) == (2, 1)
    assert report.mner.precision == pytest.approx(50.0)
    assert report.mner.recall == pytest.approx(200 / 3)
    assert report.mner.f1 == pytest.approx(2 * 50 * (200 / 3) / (50 + 200 / 3))
    assert report.mnerg.f1 == pytest.approx(2 * 25 * (100 / 3) / (25 + 100 / 3))
    # Appendix D span prediction, type ignored: 3 of the 4 predicted spans are gold spans
    assert (report.main.span.tp, report.main.span.n_pred, report.main.span.n_gold) == (3, 4, 3)
    assert report.main.span.f1 == pytest.approx(2 * 75 * 100 / 175)


def test_duplicate_predictions_count_once_and_the_last_wins() -> None:
    gold = _post(_gold(0, 2, "PER", (GOLD_BOX,)))
    pred = [_pred(0, 2, "PER", Box(40, 40, 50, 50)), _pred(0, 2, "PER", GOLD_BOX)]
    report = score([gold], {"p": pred}, GMNER_SCHEMA)
    assert (report.mner.tp, report.mner.n_pred) == (1, 1)
    assert (report.mnerg.tp, report.mnerg.n_pred) == (1, 1)
    flipped = score([gold], {"p": pred[::-1]}, GMNER_SCHEMA)
    assert flipped.mnerg.tp == 0


def test_empty_prediction_and_missing_post() -> None:
    gold = _post(_gold(0, 1))
    empty = score([gold], {"p": []}, GMNER_SCHEMA)
    assert (empty.mner.tp, empty.mner.n_pred, empty.mner.n_gold) == (0, 0, 1)
    assert empty.mner.precision == 0.0 and empty.mner.f1 == 0.0
    missing = score([gold], {}, GMNER_SCHEMA)
    assert missing.missing_posts == ["p"] and missing.mner.n_gold == 1
    unknown = score([gold], {"other": [_pred(0, 1)]}, GMNER_SCHEMA)
    assert unknown.unknown_posts == ["other"] and unknown.mner.n_pred == 0


def test_string_matching_collapses_repeated_mentions() -> None:
    gold = Post("p", ["A", "x", "A"], [Entity(0, 1, "A", "PER", "PER"), Entity(2, 3, "A", "PER", "PER")])
    pred = [PredictedEntity(0, 1, "A", "PER", "PER")]
    assert score([gold], {"p": pred}, GMNER_SCHEMA, match="string").mner.f1 == pytest.approx(100.0)
    assert score([gold], {"p": pred}, GMNER_SCHEMA, match="span").mner.recall == pytest.approx(50.0)


def test_fmnerg_fine_and_coarse_scores() -> None:
    gold = Post("p", ["Ted", "Cruz"], [Entity(0, 2, "Ted Cruz", "politician", "person")])
    pred = [PredictedEntity(0, 2, "Ted Cruz", "actor", "person")]
    report = score([gold], {"p": pred}, FMNERG_SCHEMA)
    assert report.mner.tp == 0 and report.coarse is not None and report.coarse.mner.tp == 1
    assert report.main.per_type["actor"]["mner"].n_pred == 1
    assert report.main.per_type["politician"]["mner"].n_gold == 1


def test_fine_grained_visual_subset() -> None:
    small, large = Box(0, 0, 10, 10), Box(0, 0, 50, 50)  # 100 and 2500 px of a 100x100 image (limit 200)
    assert is_fine_visual(Entity(0, 1, "a", "PER", "PER", (small,)), (100, 100))
    assert not is_fine_visual(Entity(0, 1, "a", "PER", "PER", (small, large)), (100, 100))
    gold = _post(_gold(0, 1, "PER", (small,)), _gold(1, 2, "PER", (large,)), _gold(2, 3, "PER"))
    pred = [_pred(0, 1, "PER", small), _pred(1, 2, "PER", Box(0, 0, 5, 5)), _pred(4, 5, "PER", Box(0, 0, 3, 3))]
    report = score([gold], {"p": pred}, GMNER_SCHEMA)
    visual, fine = report.grounding["visual"], report.grounding["fine_visual"]
    assert (visual.tp, visual.n_pred, visual.n_gold) == (1, 3, 2)
    # the spurious small box counts as a fine prediction; the one on a large gold entity does not
    assert (fine.tp, fine.n_pred, fine.n_gold) == (1, 2, 1)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_gold_against_itself_is_100_everywhere(name: str) -> None:
    dataset = load_dataset(name, "test")
    report = score(dataset.posts, gold_as_predictions(dataset.posts), dataset.schema)
    levels = [report.main] + ([report.coarse] if report.coarse else [])
    for level in levels:
        for prf in (level.mner, level.eeg, level.mnerg):
            assert prf.f1 == pytest.approx(100.0)
    for prf in report.grounding.values():
        assert prf.f1 == pytest.approx(100.0)
