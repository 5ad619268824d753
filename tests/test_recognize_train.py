"""Training: a synthetic task is learned, a killed run resumes bit-for-bit, predictions resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from gemner.data.issues import DataError
from gemner.recognize.config import RecognizerConfig
from gemner.recognize.encoding import collate, encode_posts
from gemner.recognize.model import Recognizer
from gemner.recognize.predict import write_predictions
from gemner.recognize.testing import TINY_SCHEMA, synthetic_posts
from gemner.recognize.train import evaluate, train_recognizer


@pytest.fixture(scope="module")
def encoder_dir(wide_encoder_dir):
    return wide_encoder_dir


def _quiet(_message: str) -> None:
    pass


@pytest.mark.parametrize("overrides", [{}, {"head": "softmax", "mgp": False}])
def test_learns_a_synthetic_tagging_task(encoder_dir, tmp_path, overrides):
    torch.set_num_threads(1)
    config = RecognizerConfig(encoder=encoder_dir, lr=3e-3, head_lr=1e-2, batch_size=16, epochs=5,
                              warmup_ratio=0.1, length_buckets=True, **overrides)
    train, dev = synthetic_posts(320, seed=1), synthetic_posts(80, seed=2, prefix="d")
    untrained = Recognizer.build(config, TINY_SCHEMA)
    fine = {t: i for i, t in enumerate(TINY_SCHEMA.tags)}
    before = evaluate(untrained, dev, encode_posts(untrained.tokenizer, dev, None, 64, fine), 32)
    result = train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "run", progress=False, log=_quiet)
    assert before["mner_f1"] < 20  # the untrained model does not know the task ...
    assert result.best_dev_f1 > 95, result.history  # ... five short epochs later it does
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [h["mner_f1"] for h in history] == [h["mner_f1"] for h in result.history]
    # the best-on-dev checkpoint is a loadable model that scores what training reported
    best = Recognizer.from_pretrained(tmp_path / "run")
    out = tmp_path / "dev.jsonl"
    write_predictions(best, dev, out)
    from gemner.data.userio import read_predictions
    from gemner.evaluation import score

    assert score(dev, read_predictions(out), TINY_SCHEMA).mner.f1 == pytest.approx(result.best_dev_f1, abs=1e-3)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("lora_rank", [0, 4])
def test_resume_after_a_kill_is_identical_to_an_uninterrupted_run(encoder_dir, tmp_path, lora_rank):
    torch.set_num_threads(1)
    config = RecognizerConfig(encoder=encoder_dir, lr=1e-3, head_lr=5e-3, batch_size=8, epochs=2,
                              dropout=0.3, save_every_steps=3, length_buckets=True, lora_rank=lora_rank)
    train, dev = synthetic_posts(40, seed=3), synthetic_posts(16, seed=4, prefix="d")
    full = train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "full", progress=False, log=_quiet)

    def kill_at_step_7(step: int, _loss: float) -> None:
        if step == 7:  # mid epoch 2; the last state was saved at step 6
            raise _Killed

    with pytest.raises(_Killed):
        train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "cut", progress=False, log=_quiet,
                         on_step=kill_at_step_7)
    state = json.loads((tmp_path / "cut" / "last" / "trainer_state.json").read_text())
    assert (state["epoch"], state["batch"], state["global_step"]) == (1, 1, 6)
    resumed = train_recognizer(config.model_copy(update={"epochs": 2}), TINY_SCHEMA, train, dev, tmp_path / "cut",
                               resume=True, progress=False, log=_quiet)
    assert [h["mner_f1"] for h in resumed.history] == [h["mner_f1"] for h in full.history]
    names = ("adapter_model.safetensors", "heads.safetensors") if lora_rank else ("model.safetensors",)
    for name in (*names, "optimizer.safetensors"):
        a, b = load_file(tmp_path / "full" / "last" / name), load_file(tmp_path / "cut" / "last" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    with pytest.raises(DataError, match="--resume"):  # a finished run is never silently overwritten
        train_recognizer(config, TINY_SCHEMA, train, dev, tmp_path / "full", progress=False, log=_quiet)


def test_prediction_file_resumes_after_a_kill(encoder_dir, tmp_path):
    torch.manual_seed(0)
    model = Recognizer.build(RecognizerConfig(encoder=encoder_dir), TINY_SCHEMA).eval()
    posts = synthetic_posts(12, seed=5)
    out = tmp_path / "preds.jsonl"
    write_predictions(model, posts, out, batch_size=5)
    complete = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in complete] == [p.id for p in posts]
    # a kill after 7 posts, in the middle of writing the 8th line
    out.write_text("\n".join(complete[:7]) + "\n" + complete[7][:20])
    counts = write_predictions(model, posts, out, batch_size=5, resume=True)
    assert (counts.written, counts.resumed, counts.errors) == (5, 7, 0)
    assert out.read_text().splitlines() == complete


def test_knowledge_is_context_for_the_text_words(encoder_dir):
    torch.manual_seed(0)
    model = Recognizer.build(RecognizerConfig(encoder=encoder_dir, dropout=0.0), TINY_SCHEMA).eval()
    posts = synthetic_posts(4, seed=6)
    knowledge = {p.id: "knowledge about sports" for p in posts}
    plain = collate(encode_posts(model.tokenizer, posts, None, 64), 0)
    knowing = collate(encode_posts(model.tokenizer, posts, knowledge, 64), 0)
    assert knowing.input_ids.shape[1] > plain.input_ids.shape[1]
    assert torch.equal(plain.word_mask, knowing.word_mask)  # labels stay on the same text words
    with torch.no_grad():
        a, _ = model.emissions(plain)
        b, _ = model.emissions(knowing)
    assert not torch.allclose(a.fine[plain.word_mask], b.fine[knowing.word_mask])
