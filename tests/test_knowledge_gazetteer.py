"""Gazetteer knowledge: link probability, longest match, hints, and no leakage into train hints."""

from __future__ import annotations

import pytest

from gemner.data import Entity, Post
from gemner.knowledge.gazetteer import Gazetteer, gazetteer_knowledge


def _post(pid: str, text: str, *entities: tuple[int, int, str]) -> Post:
    words = text.split()
    return Post(pid, words, [Entity(s, e, " ".join(words[s:e]), t, t) for s, e, t in entities])


TRAIN = [
    _post("1", "Michael Jordan dunks", (0, 2, "athlete")),
    _post("2", "new Jordan shoes", (1, 2, "brand_name_products")),
    _post("3", "Jordan scores", (0, 1, "athlete")),
    _post("6", "go Jordan", (1, 2, "athlete")),
    _post("4", "the apple pie", ),
    _post("5", "Apple stock", (0, 1, "company")),
]


def test_link_probability_counts_every_occurrence() -> None:
    gazetteer = Gazetteer.fit(TRAIN)
    assert gazetteer.link_probability(("jordan",)) == pytest.approx(3 / 4)  # "Michael Jordan" hides one
    assert gazetteer.link_probability(("apple",)) == pytest.approx(1 / 2)


def test_hint_lists_frequent_labels_of_longest_matches() -> None:
    gazetteer = Gazetteer.fit(TRAIN)
    assert gazetteer.hint("I met Michael Jordan and Jordan".split()) == (
        "michael jordan: athlete; jordan: athlete or brand name products")
    assert gazetteer.hint("an apple".split(), min_link=0.6) == ""


def test_train_hints_come_from_other_folds_only() -> None:
    train = [_post(str(i), f"Zed{i} wins", (0, 1, "athlete")) for i in range(10)]
    dev = [_post("d", "Zed3 and Zed4")]
    hints = gazetteer_knowledge(train, dev, folds=5)
    assert all(hints[str(i)] == "" for i in range(10))  # each name occurs once: never its own hint
    assert hints["d"] == "zed3: athlete; zed4: athlete"
