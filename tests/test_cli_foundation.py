"""The foundation commands: data stats, evaluate (gold against gold is 100.00), validate, baseline."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import load_dataset
from gemner.data.userio import PredictionWriter, gold_record, prediction_record
from gemner.evaluation import gold_as_predictions

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("data", "evaluate", "baseline"):
        assert command in result.output


def test_data_stats_prints_table_4(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "stats", "--dataset", "gmner", "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    for number in ("11782", "4694", "5680", "2453", "986", "1166", "2543", "1036", "1244"):
        assert number in result.output
    assert json.loads((tmp_path / "s.json").read_text())["dev"]["boxes"] == 1166


def test_unknown_dataset_is_one_clear_line() -> None:
    result = runner.invoke(app, ["data", "stats", "--dataset", "nope"])
    assert result.exit_code == 2 and "unknown dataset 'nope'" in result.output
    assert "Traceback" not in result.output


def test_evaluate_gold_against_gold_prints_100(tmp_path: Path) -> None:
    dataset = load_dataset("fmnerg", "test")
    pred = tmp_path / "pred.jsonl"
    with PredictionWriter(pred, resume=False) as writer:
        for post in dataset.posts:
            writer.write(prediction_record(post, gold_as_predictions([post])[post.id]))
    result = runner.invoke(app, ["evaluate", "fmnerg:test", str(pred), "--per-type", "-o", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    assert result.output.count("100.00") >= 18
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["main"]["mnerg"]["f1"] == 100.0 and scores["coarse"]["mner"]["f1"] == 100.0


def test_evaluate_accepts_a_gold_jsonl(tmp_path: Path) -> None:
    posts = load_dataset("gmner", "dev").posts[:30]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(gold_record(p)) + "\n" for p in posts))
    pred = tmp_path / "pred.jsonl"
    found = gold_as_predictions(posts[:15])  # the gold entities of half the posts, none for the others
    pred.write_text("".join(json.dumps(prediction_record(p, found.get(p.id, []))) + "\n" for p in posts))
    result = runner.invoke(app, ["evaluate", str(gold), str(pred), "--schema", "gmner", "-o", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    mner = json.loads((tmp_path / "s.json").read_text())["main"]["mner"]
    assert mner["n_gold"] == sum(len(p.entities) for p in posts) > mner["tp"] > 0
    assert mner["tp"] == mner["n_pred"] == sum(len(p.entities) for p in posts[:15]) and mner["precision"] == 100.0


def test_validate_lists_problems_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("IMGID:1\nTed\tB-PERSON\n\nIMGID:2\nok\tO\n\n")
    result = runner.invoke(app, ["data", "validate", str(bad)])
    assert result.exit_code == 1
    assert "bad.txt:2 (post 1): unknown label 'PERSON'" in result.output.replace("\n", "")
    assert "1 posts" in result.output


def test_baseline_command_writes_predictions_and_scores(tmp_path: Path) -> None:
    out = tmp_path / "base.jsonl"
    result = runner.invoke(app, ["baseline", "--dataset", "gmner", "--split", "dev", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 1500
    assert json.loads((tmp_path / "base.scores.json").read_text())["main"]["mner"]["f1"] > 30


def test_errors_and_warnings_are_one_line_whatever_the_terminal_width(tmp_path: Path, monkeypatch) -> None:
    # Logs and scripts grep these lines: a narrow terminal and a long path must not split them.
    monkeypatch.setenv("COLUMNS", "30")
    deep = tmp_path / ("a-deliberately-long-folder-name-" * 3) / "nowhere"
    result = runner.invoke(app, ["evaluate", "fmnerg:test", str(deep / "pred.jsonl")])
    assert result.exit_code == 2
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(deep / "pred.jsonl") in error_lines[0]
