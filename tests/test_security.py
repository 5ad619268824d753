"""Remote code runs only when the person running gemner asks for it: a model folder whose config points
at its own Python file (transformers' `auto_map`) is refused by every loader unless `--trust-remote-code`
/ `trust_remote_code=True` is given, and a `reranker.json` saying `trust_remote_code: true` is ignored."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.hub import Pretrained, RemoteCodeError, ignore_remote_code_setting, resolve
from test_knowledge_support import save_tiny_llama

runner = CliRunner()
MARKER_ENV = "GEMNER_TEST_REMOTE_CODE_MARKER"
SRC = Path(__file__).resolve().parents[1] / "src" / "gemner"

# Importing this file is the attack: it leaves a marker, then behaves like an ordinary Llama.
EVIL_CODE = f'''
import os
from pathlib import Path

Path(os.environ["{MARKER_ENV}"]).write_text("remote code ran")

from transformers import LlamaConfig, LlamaForCausalLM


class EvilConfig(LlamaConfig):
    model_type = "evil-llama"


class EvilModel(LlamaForCausalLM):
    config_class = EvilConfig
'''


@pytest.fixture
def evil_model(tmp_path, monkeypatch) -> Path:
    """A tiny causal LM whose config asks transformers to import `evil.py` from the folder (its model
    type is one transformers lacks, so nothing loads it without that code)."""
    folder = save_tiny_llama(tmp_path / "evil-model")
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "evil-llama"
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                          "AutoModelForCausalLM": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "evil.py").write_text(EVIL_CODE)
    monkeypatch.setenv(MARKER_ENV, str(tmp_path / "marker"))
    return folder


def ran(folder: Path) -> bool:
    return (folder.parent / "marker").exists()


def test_a_reranker_json_cannot_switch_remote_code_on(evil_model, tmp_path, caplog):
    adapter = tmp_path / "reranker"
    adapter.mkdir()
    (adapter / "reranker.json").write_text(json.dumps({"model": str(evil_model), "trust_remote_code": True}))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("")
    result = runner.invoke(app, ["rerank", "--model", str(adapter), "--predictions", str(predictions),
                                 "--output", str(tmp_path / "out.jsonl"), "--device", "cpu"])
    assert not ran(evil_model), "a file that travels with the weights made gemner run their code"
    assert result.exit_code == 2, result.output
    assert "--trust-remote-code" in result.output and "Traceback" not in result.output
    assert "reranker config asks for trust_remote_code; ignored" in caplog.text


def test_the_command_line_flag_is_what_allows_remote_code(evil_model, tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("")
    command = [sys.executable, "-m", "gemner.cli.main", "rerank", "--model", str(evil_model), "--predictions",
               str(predictions), "--output", str(tmp_path / "out.jsonl"), "--device", "cpu"]
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode == 2 and not ran(evil_model), refused.stderr
    allowed = subprocess.run([*command, "--trust-remote-code"], capture_output=True, text=True, timeout=120, env=env)
    assert ran(evil_model), allowed.stderr


def test_every_auto_loader_refuses_remote_code_unless_asked(evil_model):
    from gemner.knowledge.captioner import ModelCaptioner
    from gemner.knowledge.local_llm import LocalLLMBackend, LocalLLMConfig
    from gemner.recognize.checkpoint import load_encoder
    from gemner.rerank.config import RerankerConfig
    from gemner.rerank.model import Reranker

    loaders = {
        "recogniser encoder": lambda: load_encoder(str(evil_model)),
        "local LLM": lambda: LocalLLMBackend(LocalLLMConfig(model=str(evil_model))),
        "reranker base": lambda: Reranker.load(str(evil_model), RerankerConfig(), device="cpu"),
        "captioner": lambda: ModelCaptioner(str(evil_model)),
    }
    for name, load in loaders.items():
        with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
            load()
        assert not ran(evil_model), name


def test_recogniser_checkpoint_encoder_config_cannot_run_code(evil_model, tmp_path):
    """A full fine-tune keeps its encoder config in the checkpoint: that file may not import code either."""
    from gemner.recognize import Recognizer
    from gemner.recognize.config import RecognizerConfig
    from gemner.recognize.testing import TINY_SCHEMA, make_tiny_encoder

    encoder = make_tiny_encoder(tmp_path / "encoder")
    Recognizer.build(RecognizerConfig(encoder=str(encoder), lora_rank=0), TINY_SCHEMA).save_pretrained(tmp_path / "ck")
    config_path = tmp_path / "ck" / "encoder" / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    config["model_type"] = "evil-llama"
    config_path.write_text(json.dumps(config))
    (tmp_path / "ck" / "encoder" / "evil.py").write_text(EVIL_CODE)
    with pytest.raises(RemoteCodeError):
        Recognizer.from_pretrained(tmp_path / "ck")
    assert not ran(evil_model)


def test_remote_code_is_decided_only_by_resolve(tmp_path):
    pretrained = resolve(str(tmp_path))
    assert pretrained.trust_remote_code is False and resolve(str(tmp_path), trust_remote_code=True).trust_remote_code
    with pytest.raises(TypeError):
        pretrained.load(object, trust_remote_code=True)  # not per call: only through resolve
    with pytest.raises(TypeError):
        resolve(str(tmp_path), trust_remote_code="yes")  # type: ignore[arg-type]
    assert ignore_remote_code_setting({"model": "m", "trust_remote_code": True}, "a file") == {"model": "m"}
    assert Pretrained("n", "s").trust_remote_code is False


def _calls(tree: ast.AST, names: set[str]) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in names]


def test_every_transformers_load_goes_through_the_hub():
    """`from_pretrained`/`from_config` on a transformers class only in gemner.hub; nowhere a literal
    `trust_remote_code=True`."""
    gemner_loaders = {"Recognizer", "EntityImageMatcher", "SamSegmenter", "Grounder", "GEM", "PeftModel"}
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for call in _calls(tree, {"from_pretrained", "from_config"}):
            receiver = call.func.value  # type: ignore[attr-defined]
            name = receiver.id if isinstance(receiver, ast.Name) else ""
            if path.name != "hub.py" and name not in gemner_loaders:
                offenders.append(f"{path.relative_to(SRC)}:{call.lineno}")
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code" \
                    and isinstance(node.value, ast.Constant) and node.value.value is True and path.name != "hub.py":
                offenders.append(f"{path.relative_to(SRC)}:{node.value.lineno} trust_remote_code=True")
    assert offenders == []


def test_pipeline_and_recogniser_configs_reject_a_remote_code_switch(tmp_path):
    from pydantic import ValidationError

    from gemner.data.issues import DataError
    from gemner.pipeline.config import load_config
    from gemner.recognize.config import RecognizerConfig

    for section in ("knowledge", "recognizer", "rerank", "ground"):
        path = tmp_path / f"{section}.yaml"
        stage = {"model": "somewhere"} if section == "recognizer" else {}
        config = {"recognizer": {"model": "somewhere"}, section: {**stage, "trust_remote_code": True}}
        path.write_text(json.dumps(config))
        with pytest.raises(DataError, match="trust_remote_code"):
            load_config(path)
    with pytest.raises(ValidationError):
        RecognizerConfig(encoder="minilm", trust_remote_code=True)
