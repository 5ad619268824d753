"""Captions: a tiny random BLIP captioning model (`knowledge.tiny_captioner`, saved, loaded back by path),
a captions file, and posts without images."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from gemner.data.issues import IssueLog
from gemner.hub import MissingWeightsError
from gemner.knowledge.captioner import (
    CaptionInput,
    CaptionsFile,
    ModelCaptioner,
    NoCaptioner,
    describe_missing_images,
)

WORDS = ["a", "man", "and", "woman", "standing", "in", "the", "street", "city", "of", "screen", "shot"]


def save_tiny_blip(folder):
    from gemner.ground.tiny import TinyItmSpec
    from gemner.knowledge.tiny_captioner import build_tiny_captioner, save_tiny_captioner

    spec = TinyItmSpec(image_size=32, patch_size=16, hidden_size=32, vision_layers=1, text_layers=1, heads=2,
                       max_text_length=48)
    model, processor = build_tiny_captioner(WORDS, spec, seed=0)
    with torch.no_grad():  # a random decoder: keep it off special tokens so captions are words
        model.text_decoder.cls.predictions.bias[:5] = -1e4
    return save_tiny_captioner(model, processor, folder)


def synthetic_image(path, colour):
    image = Image.new("RGB", (48, 40), colour)
    image.paste((255, 255, 255), (10, 10, 30, 25))
    image.save(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_blip(tmp_path_factory.mktemp("blip"))


def test_model_captioner_by_path_batched(tmp_path, model_dir):
    images = [synthetic_image(tmp_path / f"{i}.png", (40 * i, 90, 200)) for i in range(3)]
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    posts = [CaptionInput(f"p{i}", path) for i, path in enumerate(images)]
    posts += [CaptionInput("no-image", None), CaptionInput("broken", tmp_path / "broken.jpg")]
    log = IssueLog()
    captioner = ModelCaptioner(str(model_dir), batch_size=2, max_new_tokens=5, log=log)
    batches: list[dict[str, str]] = []
    captions = captioner.caption(posts, on_batch=batches.append)
    assert set(captions) == {"p0", "p1", "p2", "no-image", "broken"}
    assert captions["no-image"] == "" and captions["broken"] == ""
    assert all(captions[f"p{i}"] and set(captions[f"p{i}"].split()) <= set(WORDS) for i in range(3))
    assert [sorted(b) for b in batches] == [["p0", "p1"], ["p2"]]  # broken image dropped from its batch
    assert len(log) == 1 and "broken" in str(log.issues[0])
    # batching does not change a caption
    alone = ModelCaptioner(str(model_dir), batch_size=1, max_new_tokens=5).caption(posts[:3])
    assert alone == {k: captions[k] for k in ("p0", "p1", "p2")}


def test_unknown_captioner_name_fails_with_how_to(monkeypatch):
    monkeypatch.delenv("GEMNER_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="not available offline"):
        ModelCaptioner("Salesforce/blip2-opt-2.7b-not-cached-here")


def test_captions_file_and_no_captioner(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_text(json.dumps({"id": "a", "caption": " a city street "}) + "\nnot json\n"
                    + json.dumps({"id": "b"}) + "\n")
    source = CaptionsFile(path)
    posts = [CaptionInput("a", None), CaptionInput("b", None), CaptionInput("c", None)]
    assert source.caption(posts) == {"a": "a city street", "b": "", "c": ""}
    assert [issue.line for issue in source.log.issues] == [2, 3]
    assert NoCaptioner().caption(posts) == {"a": "", "b": "", "c": ""}
    assert describe_missing_images(3, 3).startswith("no images: all 3 captions are empty")
    assert describe_missing_images(1, 3) == "1 of 3 posts have no image: their captions are empty"
    assert describe_missing_images(0, 3) is None


def test_build_captions_are_cached_per_image(tmp_path, model_dir, monkeypatch):
    from gemner.knowledge.builder import caption_posts
    from gemner.knowledge.cache import KnowledgeCache
    from gemner.knowledge.job import SourcePost

    images = [synthetic_image(tmp_path / f"{i}.png", (0, 60 * i, 100)) for i in range(2)]
    posts = [SourcePost("p0", "t", "x", images[0]), SourcePost("p1", "t", "y", images[1]),
             SourcePost("p2", "t", "z", None)]
    with KnowledgeCache(tmp_path / "c.sqlite") as cache:
        first = caption_posts(posts, str(model_dir), None, cache, batch_size=2)
        assert first["p2"] == "" and first["p0"] and first["p1"]
        assert cache.captions(str(model_dir)) == {str(images[0]): first["p0"], str(images[1]): first["p1"]}
        with monkeypatch.context() as patch:
            import gemner.knowledge.captioner as captioner_module

            patch.setattr(captioner_module, "ModelCaptioner", lambda *a, **k: pytest.fail("re-captioned"))
            assert caption_posts(posts, str(model_dir), None, cache, batch_size=2) == first
