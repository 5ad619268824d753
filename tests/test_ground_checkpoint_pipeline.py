"""A `gemner train grounder` folder is what the pipeline grounds with: its weights and its tuned threshold."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import FMNERG_SCHEMA
from gemner.data.synthetic import write_synthetic_benchmark
from gemner.ground.checkpoint import read_grounder_settings
from gemner.ground.tiny import TinyItmSpec, build_tiny_itm, save_tiny_itm
from gemner.pipeline.config import GroundStage
from gemner.pipeline.stages import GroundRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounder_checkpoint")
    bench = root / "bench"
    write_synthetic_benchmark(bench, posts=40, seed=2)
    words = {w.lower() for line in (bench / "txt").glob("*.txt") for row in line.read_text().splitlines()
             for w in row.split("\t")[:1] if w and not w.startswith("IMGID:")}
    itm = save_tiny_itm(*build_tiny_itm(sorted(words | set(FMNERG_SCHEMA.labels)), TinyItmSpec(image_size=64)),
                        root / "itm")
    output = root / "grounder"
    result = runner.invoke(app, ["train", "grounder", "--dataset", str(bench), "--images", str(bench / "images"),
                                 "--output", str(output), "--model", str(itm), "--max-posts", "12", "--device", "cpu",
                                 "--threads", "1", "--lr", "1e-3"])
    assert result.exit_code == 0, result.output
    return itm, output


def test_the_pipeline_loads_the_trained_folder_with_its_tuned_threshold(trained):
    itm, output = trained
    settings = read_grounder_settings(output)
    assert "dev_accuracy" in settings and settings["dataset"].endswith("bench")  # tuned on the folder's dev split
    ground = GroundRunner(GroundStage.model_validate({"itm_model": str(output), "segmenter": "region"}), print)
    assert ground.state.state == "on"
    assert settings["threshold"] != GroundStage().threshold  # tuned, so it tells the two apart
    grounder = ground.grounder.load()  # loaded on first need; here, now
    assert grounder.config.threshold == settings["threshold"]
    saved = load_file(str(output / "model.safetensors"))
    loaded = grounder.matcher.model.state_dict()
    name = next(k for k in saved if k in loaded and saved[k].dtype.is_floating_point)
    assert torch.equal(loaded[name].cpu(), saved[name])  # the fine-tuned weights, not the base model's
    base = load_file(str(itm / "model.safetensors"))
    assert any(not torch.equal(base[k], saved[k]) for k in saved if k in base)
    # a threshold set in the pipeline's configuration wins over the tuned one
    explicit = GroundRunner(GroundStage.model_validate({"itm_model": str(output), "segmenter": "region",
                                                         "threshold": 0.9}), print)
    assert explicit.grounder.load().config.threshold == 0.9
