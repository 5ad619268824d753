"""Local LM backend on a tiny random Llama: the shared-prefix batched decoder must give exactly the
greedy answers of transformers' own `generate`, one prompt at a time."""

from __future__ import annotations

import threading

import pytest
import torch

from gemner.knowledge.backends import Completion, Request
from gemner.knowledge.local_llm import LocalLLMBackend, LocalLLMConfig
from gemner.knowledge.prompt import build_messages
from test_knowledge_support import save_tiny_llama, tiny_llama, tiny_tokenizer

TWEETS = [
    "Taylor Swift in New York City",
    "Leonardo DiCaprio",
    "the black eyed peas and Kate Moss on their way to an art show in New York City ( 1993 )",
    "data lake",
]


@pytest.fixture(scope="module")
def parts():
    tokenizer = tiny_tokenizer(" ".join(TWEETS))
    return tokenizer, tiny_llama(tokenizer)


def reference_greedy(tokenizer, model, messages, max_new_tokens):
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    encoded = tokenizer(ids, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    new = out[0, encoded["input_ids"].shape[1]:].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new, skip_special_tokens=True).strip()


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_batched_answers_equal_one_at_a_time_generate(parts, prefix_cache):
    tokenizer, model = parts
    backend = LocalLLMBackend(LocalLLMConfig(batch_size=4, max_new_tokens=6, prefix_cache=prefix_cache),
                              model=model, tokenizer=tokenizer)
    conversations = [build_messages(tweet, "") for tweet in TWEETS]
    got = backend.generate(conversations)
    expected = [reference_greedy(tokenizer, model, messages, 6) for messages in conversations]
    assert [text for text, _ in got] == expected
    assert all(text for text, _ in got)  # a random model still says something


def test_prefix_is_really_shared(parts):
    tokenizer, model = parts
    backend = LocalLLMBackend(LocalLLMConfig(), model=model, tokenizer=tokenizer)
    messages = build_messages(TWEETS[0], "a caption")
    prefix, full = backend.prefix_ids(messages), backend.prompt_ids(messages)
    assert 0 < len(prefix) < len(full) and full[: len(prefix)] == prefix
    backend.generate([messages])
    assert backend._prefix is not None and backend._prefix[0] == prefix  # computed once, kept


def eos_bias_hook(eos: int, bias: float):
    def hook(module, inputs, output):
        output = output.clone()
        output[..., eos] += bias
        return output
    return hook


def test_eos_ends_an_answer_and_marks_it_complete(parts):
    tokenizer, _ = parts
    model = tiny_llama(tokenizer, seed=1)
    backend = LocalLLMBackend(LocalLLMConfig(max_new_tokens=5), model=model, tokenizer=tokenizer)
    messages = [build_messages(TWEETS[1], ""), build_messages(TWEETS[2], "")]
    handle = model.lm_head.register_forward_hook(eos_bias_hook(tokenizer.eos_token_id, -1e4))
    answers = backend.generate(messages)
    handle.remove()
    assert all(truncated and len(text.split()) >= 1 for text, truncated in answers)  # limit, not EOS
    handle = model.lm_head.register_forward_hook(eos_bias_hook(tokenizer.eos_token_id, 1e4))
    answers = backend.generate(messages)
    handle.remove()
    assert answers == [("", False), ("", False)]  # EOS first: an empty, complete answer


def test_run_reports_each_request_once_and_stops_between_batches(parts):
    tokenizer, model = parts
    backend = LocalLLMBackend(LocalLLMConfig(batch_size=2, max_new_tokens=3), model=model, tokenizer=tokenizer)
    requests = [Request(f"k{i}", build_messages(tweet, "")) for i, tweet in enumerate(TWEETS)]
    seen: list[str] = []
    stop = threading.Event()

    def on_result(request, result):
        assert isinstance(result, Completion)
        seen.append(request.key)
        stop.set()  # asked to stop after the first batch

    backend.run(requests, on_result, stop)
    assert seen == ["k0", "k1"]
    seen.clear()
    backend.run(requests, lambda r, res: seen.append(r.key), threading.Event())
    assert seen == ["k0", "k1", "k2", "k3"]


def test_build_and_export_commands_with_a_local_model_folder(tmp_path):
    import json

    from typer.testing import CliRunner

    from gemner.cli.main import app
    from gemner.knowledge.export import read_knowledge

    model_dir = save_tiny_llama(tmp_path / "llm", " ".join(TWEETS))
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(TWEETS)))
    cache, output = tmp_path / "k.sqlite", tmp_path / "k.jsonl"
    build = ["knowledge", "build", "--posts", str(posts), "--model", str(model_dir), "--cache", str(cache),
             "--batch-size", "3", "--max-new-tokens", "4"]
    runner = CliRunner()
    first = runner.invoke(app, [*build, "--limit", "2"])
    assert first.exit_code == 0, first.output
    assert "2 answered now" in first.output and "resume with:" in first.output
    second = runner.invoke(app, build)
    assert second.exit_code == 0 and "2 were cached, 2 answered now" in second.output, second.output
    status = runner.invoke(app, ["knowledge", "status", "--cache", str(cache)])
    assert "4/4 posts answered" in status.output
    exported = runner.invoke(app, ["knowledge", "export", "--cache", str(cache), "--output", str(output)])
    assert exported.exit_code == 0, exported.output
    knowledge = read_knowledge(output)
    assert sorted(knowledge) == ["p0", "p1", "p2", "p3"] and all(text for text, _ in knowledge.values())
