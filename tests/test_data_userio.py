"""User posts in, predictions out (resumable), and the benchmark-style tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from gemner.data import GMNER_SCHEMA, Box, Post, PredictedEntity, load_dataset
from gemner.data.tokenize import tokenize_tweet
from gemner.data.userio import (
    PredictionWriter,
    gold_record,
    prediction_record,
    read_gold_jsonl,
    read_posts,
    read_predictions,
)


def test_tokenizer_splits_like_the_benchmark() -> None:
    assert tokenize_tweet("RT @Ted_Cruz: We're #1 &amp; zero-pain!") == [
        "RT", "@", "Ted", "_", "Cruz", ":", "We", "'", "re", "#", "1", "&amp", ";", "zero-pain", "!"]
    assert tokenize_tweet("see https://t.co/x1 ...") == ["see", "https://t.co/x1", ".", ".", "."]


def test_tokenizer_is_stable_on_benchmark_tweets() -> None:
    posts = load_dataset("gmner", "dev").posts
    same = sum(tokenize_tweet(" ".join(p.tokens)) == p.tokens for p in posts)
    assert same / len(posts) > 0.9  # the rest are URLs cut by the original crawler ("http://t." "co/...")


def test_read_posts_reports_bad_lines_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    lines = [
        json.dumps({"id": "a", "text": "Ted Cruz in #Texas", "image": "a.jpg"}),
        "{not json",
        json.dumps({"text": "no id"}),
        json.dumps({"id": "b", "tokens": ["Hi", "there"]}),
        json.dumps({"id": "a", "text": "duplicate"}),
        json.dumps({"id": "c", "text": "   "}),
        json.dumps(["a", "list"]),
    ]
    path.write_text("\n".join(lines) + "\n")
    posts, log = read_posts(path, images_dir=tmp_path / "imgs")
    assert [p.id for p in posts] == ["a", "b"]
    assert posts[0].tokens == ["Ted", "Cruz", "in", "#", "Texas"] and posts[0].image == tmp_path / "imgs" / "a.jpg"
    assert [i.line for i in log.issues] == [2, 3, 5, 6, 7]
    assert log.issues[3].post_id == "c" and "empty post" in log.issues[3].message


def test_prediction_writer_resumes_after_a_crash_mid_line(tmp_path: Path) -> None:
    path = tmp_path / "out" / "preds.jsonl"
    post = Post("1", ["Ted", "Cruz"])
    entity = PredictedEntity(0, 2, "Ted Cruz", "PER", "PER", Box(1, 2, 3, 4.5), {"itm": 0.9})
    with PredictionWriter(path) as writer:
        writer.write(prediction_record(post, [entity]))
    with open(path, "a") as handle:  # a crash while writing the second post
        handle.write('{"id": "2", "tokens": ["half')
    writer = PredictionWriter(path)
    assert writer.done_ids == {"1"}
    writer.write(prediction_record(Post("2", ["x"]), []))
    writer.close()
    predictions = read_predictions(path)
    assert predictions == {"1": [post.locate(entity)], "2": []}  # written with its characters
    assert PredictionWriter(path, resume=False).done_ids == set() and not path.read_text()


def test_gold_jsonl_round_trip(tmp_path: Path) -> None:
    posts = load_dataset("gmner", "dev").posts[:50]
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(gold_record(p)) + "\n" for p in posts))
    again = read_gold_jsonl(path, GMNER_SCHEMA)
    assert [(p.id, p.entities, p.image_size) for p in again] == [(p.id, p.entities, p.image_size) for p in posts]
