"""`gemner predict`'s ablation switches (--no-knowledge, --no-filter, --no-rerank, --no-ground) edit the
configuration through `pipeline.config.ABLATIONS`, alone and together, end to end with tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.userio import read_prediction_records
from gemner.pipeline.config import ABLATIONS, SWITCH_ABLATIONS, PipelineConfig, apply_ablations
from gemner.pipeline.testing import tiny_pipeline_config
from gemner.recognize.testing import synthetic_posts

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_pipeline_models) -> dict[str, Path]:
    """A pipeline YAML with every stage on (a sample filter that lets nothing through), and posts."""
    root = tmp_path_factory.mktemp("ablations")
    posts = synthetic_posts(4, seed=7, prefix="t")
    lines, knowledge = [], []
    for i, post in enumerate(posts):
        Image.new("RGB", (64, 48), (40 * i, 120, 200)).save(root / f"{post.id}.png")
        lines.append(json.dumps({"id": post.id, "tokens": post.tokens, "image": f"{post.id}.png"}))
        knowledge.append(json.dumps({"id": post.id, "knowledge": "a tweet about people and places"}))
    (root / "posts.jsonl").write_text("\n".join(lines) + "\n")
    (root / "knowledge.jsonl").write_text("\n".join(knowledge) + "\n")
    # gamma far above any entropy: with the filter on, no entity is reranked
    knowledge_stage = {"enabled": True, "file": str(root / "knowledge.jsonl")}
    pipeline = tiny_pipeline_config(tiny_pipeline_models, knowledge=knowledge_stage, rerank={"gamma": 100.0})
    (root / "tiny.yaml").write_text(pipeline.to_yaml())
    return {"root": root, "config": root / "tiny.yaml", "posts": root / "posts.jsonl"}


def _predict(setup: dict[str, Path], tmp_path: Path, *switches: str) -> list[dict]:
    output = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", "--config", str(setup["config"]), "--input", str(setup["posts"]),
                                 "--images", str(setup["root"]), "--output", str(output), "--no-progress",
                                 *switches])
    assert result.exit_code == 0, result.output
    records = read_prediction_records(output)
    assert len(records) == 4 and not any(r.get("error") for r in records)
    assert any(r["entities"] for r in records), "the trained tiny recogniser finds entities"
    return records


def _entities(records: list[dict]) -> list[dict]:
    return [e for r in records for e in r["entities"]]


def test_all_stages_on_without_switches(setup, tmp_path):
    records = _predict(setup, tmp_path)
    assert records[0]["stages"] == {"knowledge": "on", "recognizer": "on", "rerank": "on", "ground": "on"}
    assert not any("rerank" in e["scores"] for e in _entities(records))  # the filter kept every label
    assert all(e["box_status"] == "computed" for e in _entities(records))


def test_no_filter_reranks_every_entity(setup, tmp_path):
    records = _predict(setup, tmp_path, "--no-filter")
    assert records[0]["stages"]["rerank"] == "on"
    assert all("rerank" in e["scores"] for e in _entities(records))


def test_no_rerank_switches_the_reranker_off(setup, tmp_path):
    records = _predict(setup, tmp_path, "--no-rerank")
    assert records[0]["stages"]["rerank"] == "off"
    assert not any("rerank" in e["scores"] for e in _entities(records))


@pytest.mark.parametrize("order", [("--no-rerank", "--no-filter"), ("--no-filter", "--no-rerank")])
def test_no_rerank_with_no_filter_keeps_the_reranker_off(setup, tmp_path, order):
    records = _predict(setup, tmp_path, *order)
    assert records[0]["stages"]["rerank"] == "off"
    assert not any("rerank" in e["scores"] for e in _entities(records))


def test_no_knowledge_switches_the_knowledge_off(setup, tmp_path):
    records = _predict(setup, tmp_path, "--no-knowledge")
    assert records[0]["stages"]["knowledge"] == "off"
    assert records[0]["stages"]["rerank"] == "on"


def test_no_ground_leaves_boxes_not_computed(setup, tmp_path):
    records = _predict(setup, tmp_path, "--no-ground", "--no-filter")
    assert records[0]["stages"]["ground"] == "off" and records[0]["stages"]["rerank"] == "on"
    assert all(e["box"] is None and e["box_status"] == "not_computed" for e in _entities(records))
    assert all("rerank" in e["scores"] for e in _entities(records))


def test_every_switch_names_a_paper_ablation():
    assert set(SWITCH_ABLATIONS.values()) == set(ABLATIONS)
    base = PipelineConfig.model_validate({"recognizer": {"model": "x"}})
    both = apply_ablations(base, ["w/o-CR", "w/o-SF"])
    assert not both.rerank.enabled and not both.rerank.sample_filter and both.knowledge.enabled
    assert apply_ablations(base, []) == base
    with pytest.raises(ValueError, match="w/o-XX"):
        apply_ablations(base, ["w/o-XX"])
