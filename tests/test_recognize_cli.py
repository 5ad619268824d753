"""`gemner train recognizer` and `gemner predict` end to end on real benchmark posts (tiny encoder)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gemner.cli.main import app


def test_train_predict_evaluate_on_fmnerg(encoder_dir, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    knowledge = tmp_path / "knowledge.jsonl"
    knowledge.write_text(json.dumps({"id": "16_05_01_13", "knowledge": "a sports story", "caption": "x"}) + "\n")
    result = runner.invoke(app, [
        "train", "recognizer", "--dataset", "fmnerg", "--preset", "lite", "--encoder", encoder_dir,
        "--max-train-posts", "24", "--max-dev-posts", "12", "--epochs", "1", "--batch-size", "8",
        "--knowledge", str(knowledge), "--output", str(run), "--no-progress", "--threads", "1",
    ])
    assert result.exit_code == 0, result.output
    assert "best dev MNER F1" in result.output
    config = json.loads((run / "config.json").read_text())["recognizer"]
    assert config["encoder"] == encoder_dir and config["epochs"] == 1 and config["mgp"] and config["mga"]
    assert (run / "last" / "trainer_state.json").is_file()

    preds = tmp_path / "preds.jsonl"
    result = runner.invoke(app, [
        "predict", "--recognizer", str(run), "--dataset", "fmnerg", "--split", "dev", "--max-posts", "10",
        "--knowledge", str(knowledge), "--output", str(preds), "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(records) == 10 and all({"id", "tokens", "image", "entities"} <= r.keys() for r in records)
    for entity in (e for r in records for e in r["entities"]):
        assert entity["box"] is None and entity["box_status"] == "not_computed"
        assert len(entity["scores"]["topk"]) == 10 and len(entity["scores"]["coarse_topk"]) == 8
        assert entity["scores"]["entropy"] >= 0

    result = runner.invoke(app, ["evaluate", "fmnerg:dev", str(preds), "--output", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output


def test_predict_from_a_posts_file_and_clear_errors(encoder_dir, tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "recognizer", "--dataset", "gmner", "--encoder", encoder_dir, "--max-train-posts", "8",
        "--max-dev-posts", "4", "--epochs", "1", "--output", str(run), "--no-progress", "--no-bf16",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "labels.json").read_text())["labels"] == ["PER", "ORG", "LOC", "OTHER"]
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "text": "Obama visits Paris"}\nnot json\n{"id": "b", "tokens": ["RT", "@x"]}\n')
    preds = tmp_path / "preds.jsonl"
    result = runner.invoke(app, ["predict", "--recognizer", str(run), "--input", str(posts), "--output",
                                 str(preds), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "posts.jsonl:2" in result.output  # the bad line is named, the rest predicted
    assert [json.loads(line)["id"] for line in preds.read_text().splitlines()] == ["a", "b"]
    result = runner.invoke(app, ["predict", "--recognizer", str(tmp_path / "nowhere"), "--input", str(posts),
                                 "--output", str(preds)])
    assert result.exit_code == 2 and "not a recogniser checkpoint" in result.output
