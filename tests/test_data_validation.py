"""Bad input records meet one validator: each invalid post or prediction becomes a per-item error with file
and line (or an output record with its error), the rest goes on, and nothing valid is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import GMNER_SCHEMA, Box, Post, PredictedEntity
from gemner.data.issues import IssueLog
from gemner.data.types import Entity
from gemner.data.userio import (
    RejectedPost,
    gold_record,
    iter_posts,
    prediction_record,
    read_knowledge,
    read_posts,
    read_predictions,
)
from gemner.recognize import Recognizer
from gemner.recognize.checkpoint import build_model, save_recognizer
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.testing import TINY_SCHEMA, make_tiny_encoder

runner = CliRunner()


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> Path:
    """An untrained tiny recogniser: enough to run `gemner predict` end to end in a second."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("recognizer")
    config = RecognizerConfig(encoder=str(make_tiny_encoder(root / "encoder", hidden=16)))
    save_recognizer(build_model(Recognizer, config, TINY_SCHEMA, []), root / "model")
    return root / "model"


def _predict(recognizer: Path, tmp_path: Path, lines: list[bytes]):
    posts, out = tmp_path / "posts.jsonl", tmp_path / "out.jsonl"
    posts.write_bytes(b"\n".join(lines) + b"\n")
    result = runner.invoke(app, ["predict", "--recognizer", str(recognizer), "--input", str(posts),
                                 "--output", str(out), "--no-progress"])
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return result, records


def _line(**fields) -> bytes:
    return json.dumps(fields).encode()


# ---- 4. duplicate ids --------------------------------------------------------------------------------

def test_duplicate_id_keeps_the_first_post_and_names_both_lines(recognizer, tmp_path) -> None:
    lines = [_line(id="a", text="Ted Cruz speaks"), _line(id="b", text="hello"), _line(id="a", text="again")]
    result, records = _predict(recognizer, tmp_path, lines)
    assert result.exit_code == 0, result.output
    assert sorted(r["id"] for r in records) == ["a", "b"]  # one record per input id
    first = next(r for r in records if r["id"] == "a")
    assert "error" not in first and first["tokens"] == ["Ted", "Cruz", "speaks"]
    warning = next(line for line in result.output.splitlines() if "duplicate id" in line)
    assert "posts.jsonl:3" in warning and "first on line 1" in warning


# ---- 5. fields of the wrong type ---------------------------------------------------------------------

def test_fields_of_the_wrong_type_become_error_records_and_the_rest_is_predicted(recognizer, tmp_path) -> None:
    lines = [_line(id="img", text="a post", image=123), _line(id="tok", tokens="abc"), _line(id="txt", text=5),
             _line(id="bool", text="x", tokens=[True]), _line(id="ok", text="Ted Cruz speaks"),
             _line(id=[1, 2], text="an id that is no id")]
    result, records = _predict(recognizer, tmp_path, lines)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    by_id = {r["id"]: r for r in records}
    assert sorted(by_id) == ["bool", "img", "ok", "tok", "txt"]
    assert "error" not in by_id["ok"] and by_id["ok"]["tokens"] == ["Ted", "Cruz", "speaks"]
    for post_id, field in (("img", '"image"'), ("tok", '"tokens"'), ("txt", '"text"'), ("bool", '"tokens.0"')):
        assert field in by_id[post_id]["error"] and by_id[post_id]["entities"] == []
    assert "posts.jsonl:1:" in by_id["img"]["error"]
    assert any("posts.jsonl:6" in line and '"id"' in line for line in result.output.splitlines())


def test_read_posts_never_raises_on_wrong_types(tmp_path) -> None:
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "text": "fine"}, {"id": "b", "image": {"x": 1}, "text": "t"}, {"id": None, "text": "t"},
        {"id": "c", "tokens": ["ok", ""]}, {"id": True, "text": "t"}, {"id": 7, "text": "numeric id"}]) + "\n")
    items = list(iter_posts(path, log=(log := IssueLog())))
    assert [(type(i).__name__, i.id) for i in items] == [
        ("Post", "a"), ("RejectedPost", "b"), ("RejectedPost", "c"), ("Post", "7")]
    assert [i.line for i in log.issues] == [2, 3, 4, 5]
    assert [p.id for p in read_posts(path)[0]] == ["a", "7"]


def _tiny_llm(tmp_path: Path) -> Path:
    from test_knowledge_support import save_tiny_llama

    return save_tiny_llama(tmp_path / "llm", "Ted Cruz speaks in Texas today")


def test_knowledge_build_from_posts_with_bad_records_answers_the_valid_ones(tmp_path) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_bytes(b"\n".join([_line(id="p0", text="Ted Cruz speaks"), _line(id="p1", image=123, text="x"),
                                  _line(id="p2", tokens="abc"), b'{"id": "p3", "text": "caf\xe9"}',
                                  _line(id="p4", text="in Texas today"), _line(id="p0", text="again")]) + b"\n")
    cache, output = tmp_path / "k.sqlite", tmp_path / "k.jsonl"
    build = runner.invoke(app, ["knowledge", "build", "--posts", str(posts), "--model", str(_tiny_llm(tmp_path)),
                                "--cache", str(cache), "--max-new-tokens", "2"])
    assert build.exit_code == 0, build.output
    assert "Traceback" not in build.output
    exported = runner.invoke(app, ["knowledge", "export", "--cache", str(cache), "--output", str(output)])
    assert exported.exit_code == 0, exported.output
    assert sorted(read_knowledge(output)) == ["p0", "p4"]


# ---- 11. non-UTF-8 and NUL-byte lines that carry an id -----------------------------------------------

def test_undecodable_and_nul_lines_with_an_id_get_an_error_record(recognizer, tmp_path) -> None:
    lines = [b'{"id": "latin1", "text": "caf\xe9 au lait"}', b'{"id": "nul", "text": "a\x00b"}',
             b'{"id": "nul2"\x00, "text": "x"}', _line(id="ok", text="Ted Cruz speaks"),
             b'{"text": "no id caf\xe9"}', b'{"id": "bad\xff", "text": "id itself broken"}']
    result, records = _predict(recognizer, tmp_path, lines)
    assert result.exit_code == 0, result.output
    by_id = {r["id"]: r for r in records}
    assert sorted(by_id) == ["latin1", "nul", "nul2", "ok"]
    assert "not valid UTF-8" in by_id["latin1"]["error"] and "posts.jsonl:1" in by_id["latin1"]["error"]
    assert "NUL" in by_id["nul"]["error"] and "NUL" in by_id["nul2"]["error"]
    assert "error" not in by_id["ok"]
    warnings = [line for line in result.output.splitlines() if "warning:" in line]
    assert any("posts.jsonl:5" in w for w in warnings) and any("posts.jsonl:6" in w for w in warnings)


def test_escaped_lone_surrogate_is_an_error_not_a_crash_when_written(recognizer, tmp_path) -> None:
    result, records = _predict(recognizer, tmp_path, [b'{"id": "s", "text": "x \\ud800 y"}', _line(id="ok", text="hi")])
    assert result.exit_code == 0, result.output
    assert {r["id"]: "error" in r for r in records} == {"s": True, "ok": False}


# ---- 12. evaluate validates prediction records ---------------------------------------------------------

GOLD = Post("1", ["Ted", "Cruz", "in", "Texas"],
            [Entity(0, 2, "Ted Cruz", "PER", "PER", (Box(10, 10, 50, 50),)), Entity(3, 4, "Texas", "LOC", "LOC")],
            image_size=(100, 100))


def _entity(start=0, end=2, type="PER", box=(10, 10, 50, 50), **more) -> dict:
    return {"start": start, "end": end, "text": "x", "type": type, "coarse": type,
            "box": list(box) if box is not None else None, "scores": {}, **more}


BAD_ENTITIES = [
    ("start > end", _entity(2, 1)),
    ("end past the tokens", _entity(3, 9, "LOC", None)),
    ("unknown type", _entity(3, 4, "PLACE", None)),
    ("NaN score", _entity(3, 4, "LOC", None, scores={"itm": float("nan")})),
    ("inverted box", _entity(box=(50, 10, 10, 50))),
    ("NaN box", _entity(box=(10, float("nan"), 50, 50))),
    ("Infinity start", {**_entity(), "start": float("inf")}),
    ("null entity", None),
    ("a string entity", "Ted Cruz"),
    ("bool end", {**_entity(), "end": True}),
    ("text entropy", _entity(3, 4, "LOC", None, scores={"entropy": "high"})),
]


def _pred_file(tmp_path: Path, entities: list) -> Path:
    good = [_entity(), _entity(3, 4, "LOC", None)]
    path = tmp_path / "pred.jsonl"
    lines = [json.dumps({"id": "1", "tokens": GOLD.tokens, "image": None, "entities": [*entities, *good]}),
             '{"id": "2", "tokens": "oops", "entities": []}', '{"id": "3", "entities": [{"start": Infinity}]}',
             "[1, 2]", '{"id": "4", "tokens": [], "entities": {"start": 0}}']
    path.write_text("\n".join(lines) + "\n")
    return path


def _gold_file(tmp_path: Path) -> Path:
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps(gold_record(GOLD)) + "\n")
    return path


def test_evaluate_reports_each_bad_prediction_and_scores_the_rest(tmp_path) -> None:
    pred = _pred_file(tmp_path, [e for _, e in BAD_ENTITIES])
    result = runner.invoke(app, ["evaluate", str(_gold_file(tmp_path)), str(pred), "-o", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    scores = json.loads((tmp_path / "s.json").read_text())["main"]
    assert scores["mnerg"]["f1"] == 100.0 and scores["mner"]["n_pred"] == 2
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    entity_warnings = [w for w in warnings if "pred.jsonl:1 " in w]
    assert len(entity_warnings) == len(BAD_ENTITIES)
    for (_, _), warning, number in zip(BAD_ENTITIES, entity_warnings, range(1, 20), strict=False):
        assert f"entity #{number}:" in warning
    assert "unknown type 'PLACE'" in entity_warnings[2] and "finite" in entity_warnings[3]
    for line_number in (2, 3, 4, 5):
        assert any(f"pred.jsonl:{line_number}" in w for w in warnings)


def test_evaluate_strict_stops_at_the_first_bad_prediction(tmp_path) -> None:
    pred = _pred_file(tmp_path, [_entity(2, 1)])
    result = runner.invoke(app, ["evaluate", str(_gold_file(tmp_path)), str(pred), "--strict"])
    assert result.exit_code == 2
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert "pred.jsonl:1 (post 1): entity #1:" in error and "start < end" in error
    assert "Traceback" not in result.output


def test_read_predictions_keeps_every_valid_entity(tmp_path) -> None:
    path = _pred_file(tmp_path, [e for _, e in BAD_ENTITIES])
    log = IssueLog()
    predicted = read_predictions(path, log)
    assert list(predicted) == ["1", "3"] and predicted["3"] == []
    assert [(e.start, e.end, e.type) for e in predicted["1"]] == [(3, 4, "PLACE"), (0, 2, "PER"), (3, 4, "LOC")]
    assert all(i.path == str(path) and i.line is not None for i in log.issues)
    with_schema = read_predictions(path, IssueLog(), schema=GMNER_SCHEMA)
    assert [(e.start, e.end, e.type) for e in with_schema["1"]] == [(0, 2, "PER"), (3, 4, "LOC")]


# ---- the writer checks through the same validator -------------------------------------------------------

def test_prediction_record_leaves_out_an_entity_that_would_not_read_back(tmp_path) -> None:
    post = Post("p", ["Ted", "Cruz"])
    good = PredictedEntity(0, 2, "Ted Cruz", "PER", "PER", Box(1, 2, 3, 4), {"itm": 0.5})
    record = prediction_record(post, [good, PredictedEntity(0, 5, "x", "PER", "PER"),
                                      PredictedEntity(0, 1, "x", "PER", "PER", scores={"entropy": float("nan")})])
    assert record["entities"] == [post.locate(good).to_json()]
    assert "entity #2 left out" in record["error"] and "entity #3 left out" in record["error"]
    assert PredictedEntity.from_json(record["entities"][0]) == post.locate(good)
    with pytest.raises(ValueError, match="start < end"):
        PredictedEntity.from_json({"start": 1, "end": 1, "type": "PER"})


def test_rejected_post_error_names_file_and_line() -> None:
    assert RejectedPost("a", "boom", "in.jsonl", 3).error == "in.jsonl:3: boom"
