"""Character offsets: every token and every entity maps back to the characters of the user's string."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemner.data import Post, PredictedEntity
from gemner.data.records import check_entity
from gemner.data.tokenize import tokenize_tweet, tokenize_with_offsets
from gemner.data.userio import prediction_record

TWEET = "RT @Ted_Cruz: We're #1 &amp; zero-pain! Disney+ wins, A+B no. https://t.co/x w/ 🙂"


def _entity(start: int, end: int) -> PredictedEntity:
    return PredictedEntity(start, end, "", "PER", "PER", scores={"topk": [["PER", 0.75], ["LOC", 0.25]]})


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_every_token_is_its_slice_of_any_string(raw: str) -> None:
    tokens, spans = tokenize_with_offsets(raw)
    assert tokens == tokenize_tweet(raw)
    assert [raw[s:e] for s, e in spans] == tokens
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # in order, never overlapping


@settings(max_examples=300, deadline=None)
@given(st.text(), st.data())
def test_every_entity_text_is_its_slice_of_any_string(raw: str, data: st.DataObject) -> None:
    post = Post.from_text("p", raw)
    if not post.tokens:
        return
    start = data.draw(st.integers(0, len(post.tokens) - 1))
    end = data.draw(st.integers(start + 1, len(post.tokens)))
    entity = post.locate(_entity(start, end))
    assert raw[entity.start_char:entity.end_char] == entity.text
    first, last = post.char_spans[start][0], post.char_spans[end - 1][1]
    assert entity.start_char <= first and entity.end_char >= last  # never shorter than its tokens
    assert raw[entity.start_char:first] in ("", "@", "#") and set(raw[last:entity.end_char]) <= {"+"}
    record = prediction_record(post, [entity])
    assert record["entities"] and record["text"] == raw
    assert not isinstance(check_entity(record["entities"][0], n_tokens=len(post.tokens), raw=raw), str)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(str.strip), min_size=1,
                max_size=8), st.data())
def test_entities_of_posts_given_as_tokens_index_the_joined_tokens(tokens: list[str], data: st.DataObject) -> None:
    post = Post("p", tokens)
    start = data.draw(st.integers(0, len(tokens) - 1))
    end = data.draw(st.integers(start + 1, len(tokens)))
    entity = post.locate(_entity(start, end))
    assert post.raw == " ".join(tokens)
    assert post.raw[entity.start_char:entity.end_char] == entity.text


@pytest.mark.parametrize(("words", "expected"), [
    (["Ted", "_", "Cruz"], "@Ted_Cruz"),  # a mention: its @ and the glued underscore come along
    (["Cruz"], "Cruz"),  # the @ starts "@Ted", not "Cruz"
    (["1"], "#1"),  # a hashtag
    (["Disney"], "Disney+"),
    (["Disney", "+"], "Disney+"),
    (["A"], "A"),  # the + of "A+B" is an operator, not part of the name
    (["zero-pain"], "zero-pain"),
    (["We", "'", "re"], "We're"),
])
def test_the_entity_text_is_what_the_user_wrote(words: list[str], expected: str) -> None:
    post = Post.from_text("p", TWEET)
    start = next(i for i in range(len(post.tokens)) if post.tokens[i:i + len(words)] == words)
    entity = post.locate(_entity(start, start + len(words)))
    assert entity.text == expected and TWEET[entity.start_char:entity.end_char] == expected
    assert (entity.start, entity.end) == (start, start + len(words))  # the scorer's token span is unchanged


def test_benchmark_posts_keep_their_token_text() -> None:
    post = Post("p", ["RT", "@", "Ted", "_", "Cruz", ":"])
    entity = post.locate(_entity(2, 5))
    assert (entity.text, entity.start_char, entity.end_char) == ("Ted _ Cruz", 5, 15)
    assert "text" not in prediction_record(post, [entity])  # offsets index the joined tokens


def test_score_is_the_probability_of_the_entity_type() -> None:
    entity = _entity(0, 1)
    assert entity.score == 0.75
    relabelled = PredictedEntity(0, 1, "", "LOC", "LOC", scores=entity.scores)
    assert relabelled.score == 0.25 and relabelled.to_json()["score"] == 0.25
    assert PredictedEntity(0, 1, "", "ORG", "ORG", scores=entity.scores).score is None


@pytest.mark.parametrize(("change", "message"), [
    ({"end_char": None}, "start_char and end_char go together"),
    ({"start_char": 3, "end_char": 3}, "empty or inverted"),
    ({"start_char": 0, "end_char": 99}, "end past the post's 9 characters"),
    ({"start_char": 0, "end_char": 3, "text": "Ted"}, "is not the post's characters"),
    ({"score": 1.5}, "score"),
])
def test_the_validator_checks_character_offsets(change: dict, message: str) -> None:
    raw = "@Ted_Cruz"
    entity = {"start": 0, "end": 3, "start_char": 0, "end_char": 9, "text": "@Ted_Cruz", "type": "PER"}
    assert not isinstance(check_entity(entity, n_tokens=4, raw=raw), str)
    problem = check_entity({**entity, **change}, n_tokens=4, raw=raw)
    assert isinstance(problem, str) and message in problem


def test_a_read_back_entity_keeps_its_offsets() -> None:
    post = Post.from_text("p", "@Ted_Cruz in #Texas")
    entities = [post.locate(_entity(1, 4)), post.locate(_entity(6, 7))]
    record = prediction_record(post, entities)
    assert [e["text"] for e in record["entities"]] == ["@Ted_Cruz", "#Texas"]
    assert [PredictedEntity.from_json(e, raw=record["text"]) for e in record["entities"]] == entities


def test_grounding_a_predictions_file_queries_the_tokens_the_models_read() -> None:
    from gemner.ground.batch import _model_text

    post = Post.from_text("p", "@Ted_Cruz speaks")
    record = prediction_record(post, [_entity(1, 4)])
    entity = PredictedEntity.from_json(record["entities"][0], raw=record["text"])
    assert entity.text == "@Ted_Cruz" and _model_text(record, entity) == "Ted _ Cruz"
