"""`gemner ground` on one image and in batch mode; real-model presets fail clearly when offline."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.ground.synthetic import SceneSpec, make_scenes, vocabulary
from gemner.ground.tiny import TinyItmSpec, build_tiny_itm, save_tiny_itm
from gemner.hub import MissingWeightsError

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained tiny ITM saved as an ordinary checkpoint folder (the CLI loads it by path)."""
    words = sorted({w for name, category in vocabulary() for w in (*name.split(" "), category)})
    model, tokenizer, processor = build_tiny_itm(words, TinyItmSpec(image_size=64, hidden_size=32))
    return save_tiny_itm(model, tokenizer, processor, tmp_path_factory.mktemp("tiny-itm"))


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    scenes = make_scenes(3, seed=11, spec=SceneSpec(size=64))
    for k, scene in enumerate(scenes):
        scene.image.save(folder / f"post{k}.png")
    return folder, scenes


def test_ground_one_image_prints_box_and_writes_overlay(tiny_model, scene_files, tmp_path):
    folder, scenes = scene_files
    target = scenes[0].objects[0]
    overlay = tmp_path / "overlay.png"
    result = runner.invoke(app, [
        "ground", "--image", str(folder / "post0.png"), "--entity", target.name, "--category", target.category,
        "--model", str(tiny_model), "--segmenter", "region", "--threshold", "0", "--overlay", str(overlay),
        "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert target.name in result.output and "P_T" in result.output
    assert "[" in result.output  # a box was printed (threshold 0: every entity is traced)
    with Image.open(overlay) as image:
        assert image.size == (64, 64) and image.format == "PNG"


def test_ground_batch_fills_boxes_reports_bad_images_and_resumes(tiny_model, scene_files, tmp_path):
    folder, scenes = scene_files
    (folder / "post9.png").write_bytes(b"broken")
    predictions = tmp_path / "preds.jsonl"
    records = [
        {"id": f"post{k}", "tokens": obj.name.split(), "image": f"post{k}.png",
         "entities": [{"start": 0, "end": len(obj.name.split()), "text": obj.name, "type": obj.category,
                       "coarse": obj.category, "box": None, "box_status": "not_computed", "scores": {}}]}
        for k, obj in enumerate(scene.objects[0] for scene in scenes)]
    records.insert(1, {"id": "post9", "tokens": ["x"], "entities": [
        {"start": 0, "end": 1, "text": "x", "type": "shape", "coarse": "shape", "box": None,
         "box_status": "not_computed", "scores": {}}]})
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n")
    output = tmp_path / "grounded.jsonl"
    args = ["ground", "--predictions", str(predictions), "--images", str(folder), "--output", str(output),
            "--model", str(tiny_model), "--segmenter", "heatmap", "--threshold", "0", "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "post9" in result.output and "unreadable image" in result.output
    assert ":5" in result.output  # the malformed line, reported with its line number
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["post0", "post9", "post1", "post2"]
    failed = lines[1]
    assert "error" in failed and failed["entities"][0]["box_status"] == "not_computed"
    for line in (lines[0], lines[2], lines[3]):
        entity = line["entities"][0]
        assert entity["box_status"] == "computed"
        assert 0.0 <= entity["scores"]["itm"] <= 1.0 and len(entity["scores"]["peak"]) == 2
        x1, y1, x2, y2 = entity["box"]
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
    # a second run resumes: only the post that failed is redone (its image is still broken), nothing duplicated
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "3 already there" in result.output and "1 earlier errors retried" in result.output
    assert sorted(json.loads(line)["id"] for line in output.read_text().splitlines()) == ["post0", "post1", "post2",
                                                                                          "post9"]
    result = runner.invoke(app, [*args, "--skip-errors"])  # keep the error records: nothing is redone
    assert result.exit_code == 0 and "4 already there" in result.output
    assert len(output.read_text().splitlines()) == 4


def test_threshold_gives_no_box(tiny_model, scene_files):
    folder, _ = scene_files
    result = runner.invoke(app, [
        "ground", "--image", str(folder / "post1.png"), "--entity", "red circle", "--category", "shape",
        "--model", str(tiny_model), "--segmenter", "region", "--threshold", "1", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "None" in result.output


def test_usage_errors():
    result = runner.invoke(app, ["ground", "--entity", "x", "--category", "y"])
    assert result.exit_code != 0 and "--image" in result.output


def test_paper_presets_fail_clearly_without_weights(monkeypatch, tmp_path, scene_files):
    from gemner.ground.itm import EntityImageMatcher
    from gemner.ground.sam import SamSegmenter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("GEMNER_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(MissingWeightsError, match="Salesforce/blip-itm-base-coco"):
        EntityImageMatcher.from_pretrained("Salesforce/blip-itm-base-coco")
    with pytest.raises(MissingWeightsError, match="facebook/sam-vit-base"):
        SamSegmenter.from_pretrained("sam-vit-base")
    with pytest.raises(MissingWeightsError, match="nielsr/slimsam-50-uniform"):
        SamSegmenter.from_pretrained("slimsam-50")
    folder, _ = scene_files
    result = runner.invoke(app, ["ground", "--image", str(folder / "post0.png"), "--entity", "a",
                                 "--category", "b", "--device", "cpu"])
    assert result.exit_code == 2
    assert "not available offline" in result.output and "Traceback" not in result.output
