"""The library contracts behind the CLI commands: one knowledge builder and one set of knowledge defaults
for `knowledge build` and the pipeline, the reranker recipe, the grounder checkpoint, paper defaults."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app

runner = CliRunner()
TWEETS = ["Ted Cruz speaks in Texas today", "Serena Williams wins in Paris", "Obama meets Merkel"]


def test_knowledge_defaults_are_the_ones_the_shipped_file_was_built_with():
    from gemner.knowledge.builder import LLMSettings
    from gemner.knowledge.local_llm import LocalLLMConfig
    from gemner.pipeline.config import KnowledgeStage

    local = LLMSettings()
    assert (local.model, local.max_new_tokens, local.dtype) == ("smollm2-135m", 48, "bfloat16")
    assert (LocalLLMConfig().max_new_tokens, LocalLLMConfig().dtype) == (48, "bfloat16")
    openai = LLMSettings(backend="openai")
    assert (openai.model, openai.max_new_tokens) == ("gpt-3.5-turbo", 256)
    # the pipeline's knowledge stage reads the very same settings type
    assert KnowledgeStage(llm={"backend": "local"}).llm == local


def test_one_knowledge_cache_by_default_overridable(monkeypatch, tmp_path):
    from gemner.knowledge.builder import CACHE_ENV, cache_path, default_cache_path

    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "gemner" / "knowledge.sqlite"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine.sqlite"))
    assert default_cache_path() == tmp_path / "mine.sqlite"
    assert cache_path(tmp_path / "given.sqlite") == tmp_path / "given.sqlite"
    assert cache_path(None) == tmp_path / "mine.sqlite"


def test_pipeline_meets_the_knowledge_that_knowledge_build_made(monkeypatch, tmp_path):
    """`knowledge build` fills the default cache; the pipeline, with the same LLM and no other setting,
    finds every answer there (same prompts, same settings): nothing is asked twice, nothing differs."""
    from gemner.data import Post
    from gemner.knowledge.builder import CACHE_ENV, LLMSettings
    from gemner.knowledge.export import read_knowledge
    from gemner.knowledge.local_llm import LocalLLMBackend
    from gemner.pipeline.config import KnowledgeStage
    from gemner.pipeline.stages import KnowledgeRunner
    from test_knowledge_support import save_tiny_llama

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "knowledge.sqlite"))
    model_dir = save_tiny_llama(tmp_path / "llm", " ".join(TWEETS))
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(TWEETS)))
    built = runner.invoke(app, ["knowledge", "build", "--posts", str(posts), "--model", str(model_dir)])
    assert built.exit_code == 0, built.output
    assert (tmp_path / "knowledge.sqlite").is_file()
    exported = runner.invoke(app, ["knowledge", "export", "--output", str(tmp_path / "k.jsonl")])
    assert exported.exit_code == 0, exported.output
    expected = {post_id: text for post_id, (text, _) in read_knowledge(tmp_path / "k.jsonl").items()}

    asked: list[int] = []
    original = LocalLLMBackend.run
    monkeypatch.setattr(LocalLLMBackend, "run", lambda self, requests, *a: (asked.append(len(requests)),
                                                                             original(self, requests, *a)))
    stage = KnowledgeStage(llm=LLMSettings(model=str(model_dir)))  # every other setting: the defaults
    knowledge, _ = KnowledgeRunner(stage, notify=lambda _m: None).knowledge(
        [Post(f"p{i}", t.split()) for i, t in enumerate(TWEETS)])
    assert knowledge == expected and all(knowledge.values())
    assert asked == [0]  # every prompt was already answered by the build


def test_reranker_recipe_alpha_follows_rank_and_defaults_are_stated_once():
    from gemner.data.issues import DataError
    from gemner.pipeline.config import RerankStage
    from gemner.rerank.config import PAPER_GAMMA, PAPER_K, RerankerConfig, overrides, preset, with_settings

    lite = preset("lite")
    assert (lite.lora_rank, lite.lora_alpha) == (64, 128)
    assert with_settings(lite, lora_rank=16).lora_alpha == 32
    assert with_settings(lite, lora_rank=16, lora_alpha=16).lora_alpha == 16
    assert with_settings(lite, lr=None, k=3).lr == lite.lr
    with pytest.raises(DataError, match="k"):
        with_settings(lite, k=0)
    assert overrides(few_shot=1).model_dump(exclude_unset=True) == {"few_shot": 1}
    stage, run = RerankStage(), RerankerConfig()
    assert (stage.gamma, stage.k, stage.mode) == (run.gamma, run.k, run.mode) == (PAPER_GAMMA, PAPER_K, "score")


def test_reranker_dev_subset_is_the_same_for_train_and_eval():
    from gemner.data import load_dataset
    from gemner.rerank.config import DEV_SEED_OFFSET
    from gemner.rerank.train import gold_queries, split_queries

    dev = load_dataset("fmnerg", "dev")
    ours = split_queries(dev.posts, dev.schema, "dev", 5, 3, 20)
    assert ours == gold_queries(dev.posts, dev.schema, 5, 3 + DEV_SEED_OFFSET, 20)
    train = split_queries(dev.posts, dev.schema, "train", 5, 3, 20)
    assert train == gold_queries(dev.posts, dev.schema, 5, 3, 20) and train != ours


def test_sample_filter_command_reads_the_paper_gamma():
    import typer

    from gemner.rerank.config import PAPER_GAMMA

    command = typer.main.get_command(app).commands["sample-filter"]
    assert next(p.default for p in command.params if p.name == "gamma") == PAPER_GAMMA


def test_train_grounder_writes_the_checkpoint_format(tmp_path):
    from gemner.data import load_dataset
    from gemner.ground.checkpoint import read_grounder_settings
    from gemner.ground.config import GrounderConfig
    from gemner.ground.grounder import with_saved_settings
    from gemner.ground.synthetic import vocabulary
    from gemner.ground.tiny import TinyItmSpec, build_tiny_itm, save_tiny_itm

    posts = [p for p in load_dataset("fmnerg", "train").posts[:3]]
    words = sorted({w for p in posts for e in p.entities for w in (*e.text.lower().split(), e.type)}
                   | {w for name, category in vocabulary() for w in (*name.split(" "), category)})
    itm = save_tiny_itm(*build_tiny_itm(words, TinyItmSpec(image_size=64, hidden_size=32)), tmp_path / "itm")
    images = tmp_path / "images"
    images.mkdir()
    for k, post in enumerate(posts):
        Image.new("RGB", (64, 64), (60 * k, 100, 200)).save(images / f"{post.id}.png")
    output = tmp_path / "grounder"
    result = runner.invoke(app, ["train", "grounder", "--images", str(images), "--output", str(output),
                                 "--model", str(itm), "--max-posts", "3", "--no-tune", "--device", "cpu",
                                 "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert (output / "model.safetensors").is_file() and (output / "config.json").is_file()
    assert not list(output.glob("*.bin")) and not list(output.glob("*.pkl"))
    settings = read_grounder_settings(output)
    assert settings["base_model"] == str(itm) and settings["dataset"] == "fmnerg" and settings["threshold"] == 0.5
    assert with_saved_settings(GrounderConfig(itm_model=str(output))).threshold == 0.5
    assert read_grounder_settings(tmp_path) == {}


def test_gazetteer_command_writes_hints_merged_with_other_knowledge(tmp_path):
    from gemner.knowledge.export import read_knowledge

    merge = tmp_path / "llm.jsonl"
    merge.write_text(json.dumps({"id": "x1", "knowledge": "an LLM explanation", "caption": "a caption"}) + "\n")
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "x1", "text": "Trump visits London"}) + "\n")
    output = tmp_path / "hints.jsonl"
    result = runner.invoke(app, ["knowledge", "gazetteer", "--dataset", "gmner", "--output", str(output),
                                 "--posts", str(posts), "--merge", str(merge)])
    assert result.exit_code == 0, result.output
    knowledge = read_knowledge(output)
    text, caption = knowledge["x1"]
    assert text.endswith("an LLM explanation") and text != "an LLM explanation" and caption == "a caption"
    assert "with a gazetteer hint" in result.output and len(knowledge) > 1000


def test_config_show_check_names_each_model_and_whether_it_is_here(tmp_path):
    import yaml

    (tmp_path / "recognizer").mkdir()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"recognizer": {"model": str(tmp_path / "recognizer")},
                                      "rerank": {"model": str(tmp_path / "nowhere")}}))
    result = runner.invoke(app, ["config", "show", str(config), "--check"])
    assert result.exit_code == 0, result.output
    assert f"recognizer: {tmp_path / 'recognizer'} -> available" in result.output.replace("\n", "")
    assert "reranker: " in result.output and "missing" in result.output



def test_loading_the_cli_imports_no_torch():
    """Option defaults read library constants, never through a module that loads torch (slow `--help`)."""
    import subprocess
    import sys

    code = "import sys, gemner.cli.main; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
