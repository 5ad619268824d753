"""Table 7 prompt, candidate sets (§3.3.2) and the free-generation mapping."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemner.data import FMNERG_SCHEMA, GMNER_SCHEMA, load_dataset
from gemner.rerank.candidates import inference_candidates, training_candidates
from gemner.rerank.generate import map_to_candidate, normalise_label
from gemner.rerank.prompt import (
    INSTRUCTION,
    TABLE7_EXAMPLES,
    RerankQuery,
    few_shot_examples,
    format_candidates,
    mark_entity,
    query_text,
)

TABLE7_EXAMPLE_1 = (
    "Here's a tweet along with its image, where the entities of the text have been labeled using &&, and you "
    "need to determine his category from the candidate set.\n"
    "Text: The geometry of plants . Garfield(&&) Park(&&) Conservatory.\n"
    'Candidate: ["park", "continent", "city", "country", "software"].'
)


def test_table7_example_is_reproduced_from_the_real_test_post():
    post = next(p for p in load_dataset("fmnerg", "test").posts if p.id == "71044")
    entity = post.entities[0]
    assert (entity.text, entity.type) == ("Garfield Park", "park")
    query = RerankQuery(tuple(post.tokens), entity.start, entity.end,
                        ("park", "continent", "city", "country", "software"))
    assert query_text(query, with_caption=True) == TABLE7_EXAMPLE_1
    assert query_text(TABLE7_EXAMPLES[0], with_caption=False) == TABLE7_EXAMPLE_1


def test_marking_and_candidate_line():
    assert mark_entity(["RT", "@", "AwkwardGoogle", ":", "Harry", "Potter"], 4, 6) == \
        "RT @ AwkwardGoogle : Harry(&&) Potter(&&)"
    assert format_candidates(["sports_team", "company"]) == 'Candidate: ["sports_team", "company"].'
    assert INSTRUCTION.endswith("determine his category from the candidate set.")


def test_caption_line_only_when_a_caption_is_known():
    query = RerankQuery(("Golden", "State"), 0, 2, ("sports_team",), caption="a basketball game")
    assert "\nCaption: a basketball game\n" in query_text(query, with_caption=True)
    assert "Caption" not in query_text(query, with_caption=False)
    assert "Caption" not in query_text(RerankQuery(("a",), 0, 1, ("x",), caption="  "), with_caption=True)


def test_bad_queries_and_few_shot_bounds():
    with pytest.raises(ValueError):
        RerankQuery(("a", "b"), 1, 3, ("x",))
    with pytest.raises(ValueError):
        RerankQuery(("a",), 0, 1, ())
    assert [q.answer for q in few_shot_examples(3)] == ["park", "sports_team", "character"]
    with pytest.raises(ValueError):
        few_shot_examples(4)


def test_inference_candidates_are_the_top_k_in_order():
    topk = [["city", 0.5], ["country", 0.2], ["state", 0.1], ["park", 0.1], ["road", 0.05], ["continent", 0.05]]
    assert inference_candidates(topk, 5) == ["city", "country", "state", "park", "road"]
    assert inference_candidates(topk, 3) == ["city", "country", "state"]
    assert inference_candidates(topk[:2], 5) == ["city", "country"]
    with pytest.raises(ValueError):
        inference_candidates(topk, 0)


@settings(max_examples=150, deadline=None)
@given(gold=st.sampled_from(FMNERG_SCHEMA.labels), k=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_training_candidates_follow_the_paper_recipe(gold, k, seed):
    candidates = training_candidates(gold, FMNERG_SCHEMA, k, random.Random(seed))
    coarse = FMNERG_SCHEMA.coarse_of[gold]
    siblings = len(FMNERG_SCHEMA.fine_labels_of(coarse)) - 1
    assert len(candidates) == k == len(set(candidates)) and gold in candidates
    same = sum(FMNERG_SCHEMA.coarse_of[c] == coarse for c in candidates) - 1
    assert same == min(max(k - 2, 0), siblings)  # K-2 siblings, or all there are
    others = sum(FMNERG_SCHEMA.coarse_of[c] != coarse for c in candidates)
    assert others == k - 1 - same and others >= (1 if k >= 2 else 0)  # the rest: other coarse types


def test_training_candidates_from_a_pool_use_only_its_labels():
    pool = ["company", "sports_team", "band", "athlete", "city"]
    draws = [training_candidates("company", FMNERG_SCHEMA, 5, random.Random(s), pool) for s in range(20)]
    assert all(sorted(d) == sorted(pool) for d in draws)  # the data's 5 types: every sibling met in training
    assert set(training_candidates("band", FMNERG_SCHEMA, 5, random.Random(0), ["band", "company"])) == {
        "band", "company"}  # a pool smaller than K: all of it
    assert "company" in training_candidates("company", FMNERG_SCHEMA, 3, random.Random(0), ["city"])


def test_training_candidates_are_seeded_and_shuffled():
    draws = [training_candidates("city", FMNERG_SCHEMA, 5, random.Random(s)) for s in range(40)]
    assert draws[0] == training_candidates("city", FMNERG_SCHEMA, 5, random.Random(0))
    assert len({d.index("city") for d in draws}) == 5  # the gold is not always in the same slot
    # FMNERG `event` has 2 siblings: K=5 gets both and 2 labels of other coarse types
    event = training_candidates("festival", FMNERG_SCHEMA, 5, random.Random(1))
    assert sorted(c for c in event if FMNERG_SCHEMA.coarse_of[c] == "event") == \
        ["event_other", "festival", "sports_event"]
    # flat schema (GMNER): K >= 4 means every label
    assert sorted(training_candidates("PER", GMNER_SCHEMA, 5, random.Random(0))) == sorted(GMNER_SCHEMA.labels)
    with pytest.raises(ValueError):
        training_candidates("unknown", FMNERG_SCHEMA, 5, random.Random(0))


def test_generated_text_always_maps_onto_a_candidate():
    candidates = ["sports_team", "sports_league", "company", "film_and_television_works"]
    assert map_to_candidate("company", candidates) == ("company", "exact")
    assert map_to_candidate(' "Sports Team".\nbecause...', candidates) == ("sports_team", "normalised")
    assert map_to_candidate("The answer is sports_league, clearly", candidates) == ("sports_league", "contained")
    assert map_to_candidate("film and tv works", candidates) == ("film_and_television_works", "similarity")
    assert map_to_candidate("", candidates)[0] in candidates
    assert normalise_label("  'Sports-Team' ") == "sports_team"


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=40))
def test_mapping_never_leaves_the_candidates(text):
    candidates = ["park", "city", "country"]
    assert map_to_candidate(text, candidates)[0] in candidates


def test_sent_entities_keep_the_gold_entities_the_filter_sends():
    from gemner.data.types import Entity, Post, PredictedEntity
    from gemner.rerank.train import sent_entities

    post = Post("p", ["Orion", "in", "Lisbon", "with", "Ana"], [
        Entity(0, 1, "Orion", "band", "organization"), Entity(2, 3, "Lisbon", "city", "location"),
        Entity(4, 5, "Ana", "author", "person")])
    predicted = {"p": [PredictedEntity(0, 1, "Orion", "company", "organization", scores={"entropy": 1.4}),
                       PredictedEntity(2, 3, "Lisbon", "city", "location", scores={"entropy": 0.3}),
                       PredictedEntity(4, 6, "Ana", "author", "person", scores={"entropy": 2.0})]}  # wrong span
    assert [e.text for e in sent_entities([post], predicted, 1.0)[0].entities] == ["Orion"]
    assert [e.text for e in sent_entities([post], predicted, 0.2)[0].entities] == ["Orion", "Lisbon"]
    assert sent_entities([post], {}, 0.2)[0].entities == [] and post.entities[2].text == "Ana"  # not mutated
