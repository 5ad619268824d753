"""`gemner vote`: a majority vote of prediction files (an ensemble of recognisers of other seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.issues import DataError, IssueLog
from gemner.data.types import Post, PredictedEntity
from gemner.data.userio import prediction_record, read_prediction_records
from gemner.recognize.vote import majority, vote_entities, vote_files

runner = CliRunner()
TOKENS = "Barack Obama met Angela Merkel in Berlin".split()


def entity(start: int, end: int, label: str, score: float) -> dict:
    return {"start": start, "end": end, "type": label, "score": score, "scores": {"entropy": 1 - score}}


def test_majority_is_more_than_half() -> None:
    assert [majority(n) for n in (2, 3, 4, 5)] == [2, 2, 3, 3]


def test_an_entity_needs_its_span_and_type_in_enough_lists() -> None:
    a = [entity(0, 2, "politician", 0.9), entity(3, 5, "politician", 0.8), entity(6, 7, "city", 0.7)]
    b = [entity(0, 2, "politician", 0.6), entity(3, 5, "politician", 0.9), entity(6, 7, "country", 0.5)]
    c = [entity(0, 2, "businessman", 0.9), entity(6, 7, "city", 0.4)]
    kept = vote_entities([a, b, c], 2)
    assert [(e["start"], e["end"], e["type"], e["scores"]["votes"]) for e in kept] == [
        (0, 2, "politician", 2), (3, 5, "politician", 2), (6, 7, "city", 2)]
    # each kept entity is the copy its highest-scoring voter wrote, scores and all
    assert [e["score"] for e in kept] == [0.9, 0.9, 0.7] and kept[1]["scores"]["entropy"] == pytest.approx(0.1)
    assert vote_entities([a, b, c], 3) == []  # no entity has all three votes
    assert len(vote_entities([a, b, c], 1)) == 3  # any vote: the overlapping ones still give way


def test_overlapping_winners_give_way_to_more_votes_then_higher_scores() -> None:
    long = entity(0, 2, "politician", 0.5)
    short = entity(1, 2, "politician", 0.9)
    kept = vote_entities([[long], [long], [short], [short], [short]], 2)
    assert [(e["start"], e["end"]) for e in kept] == [(1, 2)]  # three votes over two
    kept = vote_entities([[long], [long], [short], [short]], 2)
    assert [(e["start"], e["end"]) for e in kept] == [(1, 2)]  # two each: the higher mean score
    twice = [entity(0, 2, "politician", 0.9), entity(0, 2, "politician", 0.9)]
    assert vote_entities([twice, []], 2) == []  # a list votes once for an entity


def _write(path: Path, posts: list[tuple[str, list[PredictedEntity], str | None]]) -> Path:
    with path.open("w") as handle:
        for post_id, entities, error in posts:
            handle.write(json.dumps(prediction_record(Post(post_id, TOKENS), entities, error=error)) + "\n")
    return path


def _entity(start: int, end: int, label: str, coarse: str, p: float) -> PredictedEntity:
    return PredictedEntity(start, end, " ".join(TOKENS[start:end]), label, coarse, box=None,
                           scores={"entropy": 0.1, "topk": [[label, p]]}, box_status="not_computed")


def test_files_are_voted_post_by_post_and_a_failed_post_has_no_vote(tmp_path: Path) -> None:
    obama, merkel = _entity(0, 2, "politician", "person", 0.9), _entity(3, 5, "politician", "person", 0.8)
    merkel_wrong = _entity(3, 5, "author", "person", 0.7)
    files = [_write(tmp_path / "s42.jsonl", [("p1", [obama, merkel], None), ("p2", [obama], None)]),
             _write(tmp_path / "s1.jsonl", [("p1", [obama, merkel_wrong], None), ("p2", [], "RuntimeError: x")]),
             _write(tmp_path / "s2.jsonl", [("p1", [merkel], None), ("p2", [obama], None)])]
    counts = vote_files(files, tmp_path / "vote.jsonl")
    records = read_prediction_records(tmp_path / "vote.jsonl")
    assert [r["id"] for r in records] == ["p1", "p2"] and counts.posts == 2
    assert [(e["text"], e["type"], e["scores"]["votes"]) for e in records[0]["entities"]] == [
        ("Barack Obama", "politician", 2), ("Angela Merkel", "politician", 2)]
    assert records[0]["tokens"] == TOKENS and "error" not in records[0]
    # p2 failed in s1.jsonl: the two others still agree, and the error is carried over with its file
    assert [e["text"] for e in records[1]["entities"]] == ["Barack Obama"]
    assert records[1]["error"] == "s1.jsonl: RuntimeError: x"
    assert counts.kept == 3 and counts.candidates == 4


def test_files_of_other_posts_or_order_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.jsonl", [("p1", [], None), ("p2", [], None)])
    b = _write(tmp_path / "b.jsonl", [("p2", [], None), ("p1", [], None)])
    short = _write(tmp_path / "c.jsonl", [("p1", [], None)])
    with pytest.raises(DataError, match=r"same posts in the same order.*a\.jsonl: p1, b\.jsonl: p2"):
        vote_files([a, b], tmp_path / "out.jsonl")
    with pytest.raises(DataError, match=r"c\.jsonl: the end of the file"):
        vote_files([a, short], tmp_path / "out.jsonl")
    with pytest.raises(DataError, match="at least two"):
        vote_files([a], tmp_path / "out.jsonl")
    with pytest.raises(DataError, match="between 1 and 2"):
        vote_files([a, a], tmp_path / "out.jsonl", min_votes=3)
    with pytest.raises(DataError, match="input"):  # the writer refuses to overwrite an input
        vote_files([a, b], a)


def test_a_bad_entity_is_reported_with_its_file_and_line_and_the_rest_is_voted(tmp_path: Path) -> None:
    obama = _entity(0, 2, "politician", "person", 0.9)
    a = _write(tmp_path / "a.jsonl", [("p1", [obama], None)])
    b = _write(tmp_path / "b.jsonl", [("p1", [obama], None)])
    record = json.loads(b.read_text())
    record["entities"].append({"start": 5, "end": 99, "type": "city"})  # past the tokens
    b.write_text(json.dumps(record) + "\n")
    log = IssueLog()
    vote_files([a, b], tmp_path / "out.jsonl", log=log)
    assert [e["text"] for e in read_prediction_records(tmp_path / "out.jsonl")[0]["entities"]] == ["Barack Obama"]
    assert [(Path(i.path).name, i.line) for i in log.issues] == [("b.jsonl", 1)]


def test_the_command_writes_the_vote_and_says_what_it_kept(tmp_path: Path) -> None:
    obama = _entity(0, 2, "politician", "person", 0.9)
    files = [_write(tmp_path / f"s{i}.jsonl", [("p1", [obama] if i else [], None)]) for i in range(3)]
    result = runner.invoke(app, ["vote", *map(str, files), "--output", str(tmp_path / "v.jsonl")])
    assert result.exit_code == 0, result.output
    assert "1 posts, 1 of 1 distinct entities kept" in result.output
    result = runner.invoke(app, ["vote", *map(str, files), "--output", str(tmp_path / "v3.jsonl"), "--min-votes", "3"])
    assert result.exit_code == 0 and read_prediction_records(tmp_path / "v3.jsonl")[0]["entities"] == []
