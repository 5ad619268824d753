"""The Python API: `gem(text)` and `gem.pipe(...)` over strings, dicts and Posts, images as paths, bytes or
PIL images, character offsets and a score per entity, and devices (tiny models, no download)."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import Post
from gemner.devices import DeviceError, resolve_device
from gemner.ground.tiny import build_tiny_itm, save_tiny_itm
from gemner.pipeline.config import PipelineConfig, load_config, predict_config, with_device
from gemner.pipeline.gem import GEM
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.testing import TINY_ENTITIES, TINY_SCHEMA, TINY_WORDS, synthetic_posts
from gemner.recognize.train import train_recognizer

RAW = "rt @angela_merkel: visit Paris today with Messi!"


@pytest.fixture(scope="module")
def gem(tmp_path_factory, wide_encoder_dir, tiny_causal_lm) -> GEM:
    root = tmp_path_factory.mktemp("api-models")
    config = RecognizerConfig(encoder=wide_encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=3,
                              warmup_ratio=0.1)
    train_recognizer(config, TINY_SCHEMA, synthetic_posts(240, seed=1), synthetic_posts(40, seed=2, prefix="d"),
                     root / "recognizer", progress=False, log=lambda _m: None)
    names = [n for ns in TINY_ENTITIES.values() for name in ns for n in name.split()]
    itm = save_tiny_itm(*build_tiny_itm([*TINY_WORDS, *names, *TINY_SCHEMA.labels]), root / "itm")
    return GEM(PipelineConfig.model_validate({
        "name": "tiny", "knowledge": {"enabled": False}, "recognizer": {"model": str(root / "recognizer")},
        "rerank": {"model": tiny_causal_lm, "gamma": 0.0, "k": 3},  # gamma 0: every entity is reranked
        "ground": {"itm_model": str(itm), "segmenter": "region", "threshold": 0.0},
    }))


def _png(color=(250, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (96, 64), (30, 120, 200))
    image.paste(color, (10, 10, 40, 40))
    return image


def test_a_raw_string_gets_entities_with_character_offsets(gem: GEM) -> None:
    result = gem(RAW)
    assert result.error is None and result.entities, "the tiny recogniser finds the names"
    for entity in result.entities:
        assert RAW[entity.start_char:entity.end_char] == entity.text
        assert entity.score == dict(entity.scores["topk"])[entity.type]  # after reranking: of the chosen type
        assert entity.scores["rerank"]["choice"] == entity.type
    assert "Paris" in [e.text for e in result.entities]
    record = result.record()
    assert record["text"] == RAW and all(e["score"] is not None for e in record["entities"])


def test_pipe_takes_strings_dicts_and_posts_in_order(gem: GEM) -> None:
    post = Post.from_text("mine", "visit Japan")
    items = [RAW, {"id": "d", "text": "love new york"}, {"tokens": ["visit", "Paris"]}, post, 42, {"id": "x"}]
    results = list(gem.pipe(items, batch_size=2))
    assert [r.post.id for r in results] == ["0", "d", "2", "mine", "4", "x"]
    assert [r.error is None for r in results] == [True, True, True, True, False, False]
    assert "a post is a string, a dict or a Post, got int" in results[4].error
    assert "empty post" in results[5].error
    assert results[1].post.raw == "love new york" and results[2].post.raw == "visit Paris"
    for result in results[:4]:
        for entity in result.entities:
            assert result.post.raw[entity.start_char:entity.end_char] == entity.text
    assert [r.post.id for r in gem.predict_batch(["a", "b"])] == ["0", "1"]  # the older name takes them too


def test_pipe_as_tuples_and_repeated_ids(gem: GEM) -> None:
    out = list(gem.pipe([({"id": "a", "text": "visit Paris"}, 1), ({"id": "a", "text": "Japan"}, 2)],
                        as_tuples=True))
    assert [context for _, context in out] == [1, 2]
    assert out[0][0].error is None and "duplicate id 'a'" in out[1][0].error


@pytest.mark.parametrize("kind", ["path", "bytes", "pil"])
def test_images_as_paths_bytes_or_pil_images(gem: GEM, tmp_path, kind: str) -> None:
    image = _png()
    path = tmp_path / "post.png"
    image.save(path)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    given = {"path": str(path), "bytes": buffer.getvalue(), "pil": image}[kind]
    result = gem("visit Paris today", image=given)
    assert result.error is None and result.image is not None and result.image.size == (96, 64)
    assert result.entities and all(e.box_status == "computed" and e.box is not None for e in result.entities)
    dict_result = next(gem.pipe([{"text": "visit Paris today", "image": given}]))
    assert [e.box for e in dict_result.entities] == [e.box for e in result.entities]
    assert image.size == (96, 64) and image.mode == "RGB"  # the caller's image is left as it was


def test_unreadable_image_bytes_are_that_posts_error(gem: GEM) -> None:
    result = gem("visit Paris today", image=b"not an image")
    assert "unreadable the given image" in result.error and result.entities  # the text is still tagged


def test_device_names_and_cuda_on_a_cpu_only_torch() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="cpu") as caught:
        resolve_device("cuda:0")
    assert "CPU-only build" in str(caught.value) or "sees no GPU" in str(caught.value)


def test_device_reaches_every_stage() -> None:
    config = load_config("lite")
    assert {config.recognizer.device, config.rerank.device, config.ground.device} == {"auto"}
    moved = with_device(config, "cpu")
    assert {moved.recognizer.device, moved.rerank.device, moved.ground.device} == {"cpu"}
    assert with_device(config, "auto") == config
    assert predict_config("lite", device="cpu").recognizer.device == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        PipelineConfig.model_validate({"recognizer": {"model": "x", "device": "gpu"}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_predict_device_cuda_on_a_cpu_only_torch_is_one_readable_line(tmp_path) -> None:
    result = CliRunner().invoke(app, ["predict", "--text", "visit Paris", "--device", "cuda", "--no-rerank",
                                      "--no-ground"])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "'cuda'" in result.output and "Traceback" not in result.output


def test_predict_text_prints_offsets_into_the_raw_text(gem: GEM, tmp_path) -> None:
    recognizer = gem.config.recognizer.model
    result = CliRunner().invoke(app, ["predict", "--text", RAW, "--recognizer", recognizer, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["text"] == RAW
    assert record["entities"] and all(RAW[e["start_char"]:e["end_char"]] == e["text"] for e in record["entities"])
