"""The dictionary baseline: most frequent type per memorised string, greedy longest match."""

from __future__ import annotations

from gemner.baselines.dictionary import DictionaryTagger
from gemner.data import GMNER_SCHEMA, Entity, Post, load_dataset
from gemner.evaluation import score


def _post(tokens: str, *entities: tuple[int, int, str]) -> Post:
    words = tokens.split()
    return Post("x", words, [Entity(s, e, " ".join(words[s:e]), t, t) for s, e, t in entities])


def test_most_frequent_type_and_longest_match() -> None:
    train = [
        _post("New York is big", (0, 2, "LOC")),
        _post("New York Knicks won", (0, 3, "ORG")),
        _post("Jordan plays", (0, 1, "PER")),
        _post("Jordan shoes", (0, 1, "OTHER")),
        _post("Jordan again", (0, 1, "PER")),
    ]
    tagger = DictionaryTagger.fit(train, GMNER_SCHEMA)
    found = tagger.predict("I saw the New York Knicks and Jordan in New York".split())
    assert [(e.text, e.type) for e in found] == [("New York Knicks", "ORG"), ("Jordan", "PER"), ("New York", "LOC")]
    assert all(e.box is None and e.box_status == "not_computed" for e in found)


def test_baseline_beats_nothing_on_real_test_data() -> None:
    train, test = load_dataset("gmner", "train"), load_dataset("gmner", "test")
    tagger = DictionaryTagger.fit(train.posts, train.schema)
    report = score(test.posts, {p.id: tagger.predict(p.tokens) for p in test.posts}, test.schema)
    assert 30 < report.mner.f1 < 70  # a memorising baseline: well above zero, well below a trained model
    assert report.mnerg.tp < report.mner.tp  # every box is None, so groundable entities are always missed
