"""Paper Table 6 prompt, word for word, and the forgiving JSON reader of the LLM's answer."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gemner.knowledge.prompt import (
    TABLE6_EXAMPLES,
    build_messages,
    parse_answer,
    prompt_hash,
    render_query,
)

PAPER_QUERY_2 = (
    "Here's a tweet content: i gotta feeling by the black eyed peas blocked you belong with me by taylor swift. "
    "Accordingly, it is corresponding caption: a screenshot of the youtube app showing the different videos. "
    "Please explain the tweet and especially some of the words in it according to your knowledge and answer "
    'in the format of json like: "explanation": ""'
)


def test_query_is_table6_verbatim():
    example = TABLE6_EXAMPLES[1]
    assert render_query(example.tweet, example.caption) == PAPER_QUERY_2


def test_three_examples_as_few_shot_turns_then_the_post():
    messages = build_messages("Ted Cruz in Iowa", "")
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3 + ["user"]
    assert json.loads(messages[1]["content"])["explanation"].startswith("The tweet is announcing a new solution")
    assert "Leonardo DiCaprio and Kate Moss" in messages[4]["content"]
    # no image: the caption slot stays, empty
    assert messages[-1]["content"].startswith("Here's a tweet content: Ted Cruz in Iowa. Accordingly, it is "
                                              "corresponding caption: . Please explain")
    assert len(build_messages("x", "", shots=0)) == 1
    with pytest.raises(ValueError):
        build_messages("x", "", shots=4)


def test_prompt_hash_depends_on_messages_and_settings_only():
    a = build_messages("tweet", "caption")
    assert prompt_hash(a, {"t": 1}) == prompt_hash(build_messages("tweet", "caption"), {"t": 1})
    assert prompt_hash(a, {"t": 1}) != prompt_hash(a, {"t": 2})
    assert prompt_hash(a) != prompt_hash(build_messages("tweet", "other caption"))


@pytest.mark.parametrize(("raw", "expected", "parsed"), [
    ('{"explanation": "Ted Cruz is a US senator."}', "Ted Cruz is a US senator.", True),
    ('```json\n{"explanation": "In a fence."}\n```\nHope this helps!', "In a fence.", True),
    ('Sure! {"explanation": "Trailing text follows."} Anything else?', "Trailing text follows.", True),
    ("{'explanation': 'Single quotes, it\\'s fine.'}", "Single quotes, it's fine.", True),
    ('"A bare JSON string."', "A bare JSON string.", True),
    ('"explanation": "The paper\'s own format, no braces."', "The paper's own format, no braces.", True),
    ('{"explanation": "Cut off by the token lim', "Cut off by the token lim", True),
    ('{"Explanation": "Key case differs."}', "Key case differs.", True),
    ("{\"explanation\": \"it's got an apostrophe {and braces}\"}", "it's got an apostrophe {and braces}", True),
    ("The tweet is about a football match.", "The tweet is about a football match.", False),
    ('{"summary": "wrong key"}', '{"summary": "wrong key"}', False),
    ("", "", False),
])
def test_parse_answer(raw, expected, parsed):
    answer = parse_answer(raw)
    assert (answer.explanation, answer.parsed) == (expected, parsed)


@given(st.text(max_size=200))
def test_parse_answer_never_raises_and_round_trips_json(text):
    assert parse_answer(json.dumps({"explanation": text})).explanation == text.strip()
    parse_answer(text)  # any garbage: an answer, never an exception
