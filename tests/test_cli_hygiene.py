"""`gemner` as a command in a pipeline: results alone on stdout (JSON unless asked for a table), notes on
stderr and each once, `-` for standard input and output, `--version`, and `--no-progress` silencing the
libraries' bars too. Tiny models built here; no download."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner import __version__
from gemner.cli.main import app
from gemner.pipeline.testing import tiny_pipeline_config
from gemner.progress import silenced_progress_bars

runner = CliRunner()
MISSING_ITM = "no-such-itm-weights"


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_pipeline_models) -> Path:
    """The tiny trained pipeline, reranking every entity it finds (loading the reranker draws transformers'
    bar), with a grounder whose weights are missing (so the pipeline has a note to give)."""
    pipeline = tiny_pipeline_config(tiny_pipeline_models, ground={"itm_model": MISSING_ITM})
    path = tmp_path_factory.mktemp("hygiene") / "tiny.yaml"
    path.write_text(pipeline.to_yaml())
    return path


def _predict(config: Path, *args: str, stdin: str | None = None):
    return runner.invoke(app, ["predict", "--config", str(config), "--no-progress", *args], input=stdin)


def test_one_post_piped_is_one_json_line_on_stdout_and_each_note_once(config):
    result = _predict(config, "--text", "Obama visits Paris today")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout  # no table, no note: `| jq` reads it
    record = json.loads(lines[0])
    assert record["tokens"][:3] == ["Obama", "visits", "Paris"]
    assert result.stderr.count("not available offline") == 1, result.stderr  # not repeated by the stages line
    assert result.stderr.count("note:") == 1
    assert "stages: knowledge off; recognizer on; rerank on; ground unavailable" in result.stderr


def test_format_table_prints_the_table_instead_of_json(config):
    result = _predict(config, "--text", "Obama visits Paris", "--format", "table")
    assert result.exit_code == 0, result.output
    assert "entity" in result.stdout and "entropy" in result.stdout
    assert not any(line.startswith("{") for line in result.stdout.splitlines())
    forced = _predict(config, "--text", "Obama visits Paris", "--format", "json")
    assert json.loads(forced.stdout)["tokens"] == ["Obama", "visits", "Paris"]


def test_dash_reads_posts_from_stdin_and_writes_predictions_to_stdout(config):
    posts = [{"id": f"s{i}", "text": f"Obama visits Paris number {i}"} for i in range(3)]
    stdin = "".join(json.dumps(p) + "\n" for p in posts) + "not json\n"
    result = _predict(config, "--input", "-", "--output", "-", stdin=stdin)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in records] == ["s0", "s1", "s2"]
    assert all(r["tokens"][0] == "Obama" for r in records)
    assert "-:4: not valid JSON" in result.stderr  # the bad line is named (standard input, line 4), the rest goes on
    assert "wrote standard output: 3 posts" in result.stderr


def test_no_progress_silences_the_libraries_bars(config):
    text = "obama visits paris"  # the tiny recogniser finds entities here, so the reranker loads
    shown = runner.invoke(app, ["predict", "--config", str(config), "--text", text])
    assert shown.exit_code == 0, shown.output
    assert "Loading weights" in shown.stderr  # transformers draws a bar while loading a model
    quiet = _predict(config, "--text", text)
    assert quiet.exit_code == 0, quiet.output
    assert "Loading weights" not in quiet.stderr and "it/s" not in quiet.stderr, quiet.stderr


def test_silenced_progress_bars_covers_direct_tqdm_calls_and_restores_them():
    from tqdm.auto import tqdm
    from transformers.utils import logging as transformers_logging

    drawn = io.StringIO()
    with silenced_progress_bars():
        assert not transformers_logging.is_progress_bar_enabled()
        for _ in tqdm(range(3), file=drawn, desc="direct"):
            pass
    assert drawn.getvalue() == ""
    assert transformers_logging.is_progress_bar_enabled()
    for _ in tqdm(range(3), file=drawn, desc="direct", mininterval=0):
        pass
    assert "direct" in drawn.getvalue()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gemner {__version__}"
