"""End to end: knowledge -> recogniser -> sample filter + reranker -> grounder, with tiny models built
from configs on synthetic posts and images (no download); honest stage states; resumable predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import Post
from gemner.data.userio import read_prediction_records
from gemner.pipeline.config import PipelineConfig, load_config, with_changes
from gemner.pipeline.gem import GEM
from gemner.pipeline.predict import predict_to_file
from gemner.pipeline.testing import tiny_pipeline_config
from gemner.recognize.testing import synthetic_posts

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tiny_pipeline_models) -> dict[str, str]:
    return tiny_pipeline_models


def _config(models: dict[str, str], **changes) -> PipelineConfig:
    return tiny_pipeline_config(models, **changes)


def _posts(tmp_path: Path, n: int = 6) -> list[Post]:
    posts = synthetic_posts(n, seed=7, prefix="t")
    for i, post in enumerate(posts):
        image = Image.new("RGB", (96, 64), (30 * i % 255, 120, 200))
        image.paste((250, 40, 40), (10 + i, 10, 40 + i, 40))
        post.image = tmp_path / f"{post.id}.png"
        image.save(post.image)
    return posts


def test_all_stages_run_end_to_end(models, tmp_path):
    posts = _posts(tmp_path)
    gem = GEM(_config(models))
    assert gem.stages() == {"knowledge": "off", "recognizer": "on", "rerank": "on", "ground": "on"}
    results = list(gem.predict_batch(posts, batch_size=4, keep_heatmaps=True))
    assert [r.post.id for r in results] == [p.id for p in posts]
    entities = [e for r in results for e in r.entities]
    assert entities, "the trained tiny recogniser finds entities"
    for entity in entities:
        rerank = entity.scores["rerank"]  # gamma 0: every entity is hard
        assert rerank["choice"] in rerank["candidates"] and entity.type == rerank["choice"]
        assert len(rerank["candidates"]) == 3
        assert entity.box_status == "computed" and 0.0 <= entity.scores["itm"] <= 1.0
        assert entity.box is not None  # threshold 0: every entity is traced and boxed
        x1, y1, x2, y2 = entity.box
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64
    assert any(r.heatmaps for r in results)


def test_missing_weights_mark_the_stage_not_computed(models, tmp_path):
    notes: list[str] = []
    config = _config(models, ground={"itm_model": "Salesforce/blip-itm-base-coco"}, rerank={"enabled": False})
    gem = GEM(config, notify=notes.append)
    assert gem.stages()["ground"].startswith("unavailable") and gem.stages()["rerank"] == "off"
    assert any("blip-itm-base-coco" in note for note in notes)
    result = next(gem.predict_batch(_posts(tmp_path, 3)))
    record = result.record()
    assert record["stages"]["ground"].startswith("unavailable")
    assert all(e["box"] is None and e["box_status"] == "not_computed" for e in record["entities"])


def test_unreadable_image_is_a_post_error_and_the_rest_go_on(models, tmp_path):
    posts = _posts(tmp_path, 4)
    posts[1].image.write_bytes(b"not an image")
    results = list(GEM(_config(models, rerank={"enabled": False})).predict_batch(posts))
    assert results[1].error is not None and "unreadable" in results[1].error and posts[1].id in str(results[1].post.id)
    assert all(r.error is None for i, r in enumerate(results) if i != 1)


class _Stop(Exception):
    pass


def test_predict_file_resumes_after_an_interruption_and_draws_pictures(models, tmp_path):
    posts = _posts(tmp_path, 8)
    gem = GEM(_config(models, rerank={"enabled": False}))
    output = tmp_path / "out.jsonl"

    def stop_after_three(written: int) -> None:
        if written == 3:
            raise _Stop

    with pytest.raises(_Stop):
        predict_to_file(gem, posts, output, batch_size=2, on_post=stop_after_three)
    assert len(read_prediction_records(output)) == 3
    counts, pictures = predict_to_file(gem, posts, output, batch_size=2, visualize=tmp_path / "pictures")
    assert (counts.resumed, counts.written) == (3, 5)
    ids = [r["id"] for r in read_prediction_records(output)]
    assert sorted(ids) == sorted(p.id for p in posts) and len(ids) == len(set(ids))
    assert pictures == 5 and len(list((tmp_path / "pictures").glob("*.png"))) == 5


def test_yaml_config_round_trip_and_api(models, tmp_path):
    config = _config(models, rerank={"enabled": False}, ground={"enabled": False})
    path = tmp_path / "gemner.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config and load_config(tmp_path) == config
    from gemner import GEM as PublicGEM

    gem = PublicGEM.from_pretrained(path, changes={"recognizer": {"batch_size": 4}})
    assert gem.config.recognizer.batch_size == 4
    triples = gem.predict("Obama visits Paris with Serena Williams today")
    assert {t.text.lower() for t in triples} <= {"obama", "paris", "serena williams"}
    assert all(t.box is None and t.box_status == "not_computed" for t in triples)


def test_presets_parse_and_bad_configs_are_one_clear_error(tmp_path):
    lite, paper = load_config("lite"), load_config("paper")
    assert lite.ground.sam_model == "nielsr/slimsam-50-uniform" and paper.ground.sam_model == "facebook/sam-vit-base"
    assert paper.knowledge.llm is not None and paper.knowledge.llm.backend == "openai"
    reranking = load_config("lite-rerank")
    assert not lite.rerank.enabled and reranking.rerank.enabled  # the only difference between the two
    assert with_changes(lite, {"name": "lite-rerank", "rerank": {"enabled": True}}) == reranking
    base = load_config("base")  # lite on the base encoder's recogniser, with that recogniser's own gamma
    assert base.recognizer.model.endswith("fmnerg-recognizer-base") and base.rerank.gamma != lite.rerank.gamma
    changes = {"name": "base", "recognizer": {"model": base.recognizer.model}, "rerank": {"gamma": base.rerank.gamma}}
    assert with_changes(lite, changes) == base
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"recognizer": {"model": "x"}, "rerank": {"gama": 0.3}}))
    result = runner.invoke(app, ["config", "show", str(bad)])
    assert result.exit_code == 2 and "gama" in result.output and "Traceback" not in result.output


def test_cli_predict_with_a_config_file_and_config_show(models, tmp_path):
    posts = _posts(tmp_path, 3)
    (tmp_path / "posts.jsonl").write_text("".join(
        json.dumps({"id": p.id, "text": " ".join(p.tokens), "image": p.image.name}) + "\n" for p in posts)
        + '{"id": "empty", "text": ""}\n')
    config = tmp_path / "tiny.yaml"
    config.write_text(_config(models).to_yaml())
    out = tmp_path / "triples.jsonl"
    result = runner.invoke(app, ["predict", "--config", str(config), "--input", str(tmp_path / "posts.jsonl"),
                                 "--images", str(tmp_path), "--output", str(out), "--visualize", str(tmp_path / "viz"),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    records = {r["id"]: r for r in read_prediction_records(out)}
    assert set(records) == {p.id for p in posts} | {"empty"}
    assert "empty post" in records["empty"]["error"]
    assert len(list((tmp_path / "viz").glob("*.png"))) == 3
    shown = runner.invoke(app, ["config", "show", str(config)])
    assert shown.exit_code == 0 and yaml.safe_load(shown.output)["rerank"]["k"] == 3


def _command_paths() -> list[list[str]]:
    """Every command and group of the CLI, read from the app itself (a new command is covered at once)."""
    import typer

    paths, stack = [], [([], typer.main.get_command(app))]
    while stack:
        path, command = stack.pop()
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer ships its own click, so no isinstance check)
            stack.extend(([*path, name], sub) for name, sub in command.commands.items())
    return sorted(paths)


@pytest.mark.parametrize("command", _command_paths(), ids=lambda path: " ".join(path) or "gemner")
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_a_post_whose_rerank_fails_fails_alone_in_a_batched_rerank(models, tmp_path, monkeypatch):
    from gemner.rerank import apply

    posts = _posts(tmp_path, 4)
    gem = GEM(_config(models, ground={"enabled": False}))
    good = list(gem.predict_batch(posts, batch_size=4))
    bad_id = next(r.post.id for r in good if r.entities)
    original = apply.EntityReranker._query

    def broken(self, entity, post, log, stats):
        if post.post_id == bad_id:
            raise RuntimeError("scorer broke")
        return original(self, entity, post, log, stats)

    monkeypatch.setattr(apply.EntityReranker, "_query", broken)
    results = list(gem.predict_batch(posts, batch_size=4))
    for before, after in zip(good, results, strict=True):
        if after.post.id == bad_id:
            assert after.error and "rerank failed: RuntimeError: scorer broke" in after.error
            assert all("rerank" not in e.scores for e in after.entities)  # the recogniser's labels kept
        else:
            assert after.error is None
            assert [(e.type, e.scores.get("rerank")) for e in after.entities] == \
                   [(e.type, e.scores.get("rerank")) for e in before.entities]
