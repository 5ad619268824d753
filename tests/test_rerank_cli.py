"""`gemner train reranker`, `gemner rerank` (sample filter, resume, bad input) and `gemner calibrate-gamma`."""

from __future__ import annotations

import json
import random

import pytest
from PIL import Image
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import FMNERG_SCHEMA, PredictedEntity, load_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_chat_lm):
    root = tmp_path_factory.mktemp("rerank_cli")
    base = tiny_chat_lm
    out = root / "reranker"
    result = runner.invoke(app, [
        "train", "reranker", "--dataset", "fmnerg", "--model", str(base), "--output", str(out),
        "--max-train", "16", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--lora-rank", "4",
        "--dev-max", "6", "--eval-before", "--threads", "1", "--no-bf16",
    ])
    assert result.exit_code == 0, result.output
    return out


def fake_predictions(path, n_posts=6, seed=0):
    """Recogniser-style predictions for real dev posts: gold spans, a noisy top-10 and its entropy."""
    rng = random.Random(seed)
    posts = [p for p in load_dataset("fmnerg", "dev").posts if p.entities][:n_posts]
    with path.open("w") as handle:
        for post in posts:
            entities = []
            for e in post.entities:
                labels = [e.type, *rng.sample([x for x in FMNERG_SCHEMA.labels if x != e.type], 9)]
                rng.shuffle(labels)
                probs = sorted((rng.random() for _ in labels), reverse=True)
                total = sum(probs)
                topk = [[label, p / total] for label, p in zip(labels, probs, strict=True)]
                scores = {"entropy": rng.choice([0.05, 0.15, 0.8, 1.6]), "topk": topk}
                entities.append(PredictedEntity(e.start, e.end, e.text, topk[0][0],
                                                FMNERG_SCHEMA.coarse_of[topk[0][0]], None, scores,
                                                "not_computed").to_json())
            handle.write(json.dumps({"id": post.id, "tokens": post.tokens, "image": None,
                                     "entities": entities}) + "\n")
    return [json.loads(line) for line in path.open()]


def test_training_writes_a_safetensors_adapter_and_dev_accuracy(trained):
    assert (trained / "adapter_model.safetensors").is_file() and (trained / "labels.json").is_file()
    config = json.loads((trained / "reranker.json").read_text())
    assert config["lora_rank"] == 4 and config["k"] == 5 and config["gamma"] == 0.2
    numbers = json.loads((trained / "dev_accuracy.json").read_text())
    assert numbers["steps"] == 2 and numbers["dev_entities"] == 6
    assert 0 <= numbers["before"] <= 1 and 0 <= numbers["after"] <= 1 and numbers["chance"] == pytest.approx(0.2)
    log = [json.loads(line) for line in (trained / "train_log.jsonl").open()]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2]


def test_eval_reranker_reports_each_scoring_rule(trained):
    result = runner.invoke(app, ["eval-reranker", "--model", str(trained), "--dataset", "fmnerg", "--max", "6",
                                 "--threads", "1", "--generate"])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "6 entities, K=5: chance 20.0%" in line
    numbers = json.loads((trained / "dev_accuracy.json").read_text())
    # same seeded dev subset as training's report, and the default rule (sum) gives the same accuracy
    assert f"sum {100 * numbers['after']:.1f}%" in line and "mean " in line and "first " in line
    assert "free generation, mapped onto the candidates:" in line


def test_rerank_filters_by_entropy_and_keeps_everything_else(trained, tmp_path):
    preds = tmp_path / "preds.jsonl"
    original = fake_predictions(preds)
    out = tmp_path / "reranked.jsonl"
    result = runner.invoke(app, ["rerank", "--model", str(trained), "--predictions", str(preds),
                                 "--output", str(out), "--gamma", "0.5", "--threads", "1"])
    assert result.exit_code == 0, result.output
    reranked = [json.loads(line) for line in out.open()]
    assert [p["id"] for p in reranked] == [p["id"] for p in original]
    n_hard = 0
    for before_post, after_post in zip(original, reranked, strict=True):
        for before, after in zip(before_post["entities"], after_post["entities"], strict=True):
            if before["scores"]["entropy"] <= 0.5:
                assert after == before  # easy entities are untouched
                continue
            n_hard += 1
            record = after["scores"]["rerank"]
            top5 = [label for label, _ in before["scores"]["topk"][:5]]
            assert record["candidates"] == top5 and record["choice"] in top5 and len(record["logprobs"]) == 5
            assert record["from"] == before["type"] and after["type"] == record["choice"]
            assert after["coarse"] == FMNERG_SCHEMA.coarse_of[after["type"]]
            assert after["score"] == dict(map(tuple, before["scores"]["topk"]))[after["type"]]  # of the new type
            assert {k: v for k, v in after.items() if k not in ("type", "coarse", "score", "scores")} == \
                {k: v for k, v in before.items() if k not in ("type", "coarse", "score", "scores")}
            PredictedEntity.from_json(after)  # still the shared predictions format
    assert n_hard > 0
    assert "reranked" in result.output


def test_sample_filter_after_the_fact_equals_a_filtered_run(trained, tmp_path):
    preds = tmp_path / "preds.jsonl"
    fake_predictions(preds, n_posts=5, seed=3)
    runs = {}
    for name, extra in (("all", ["--all"]), ("filtered", ["--gamma", "0.5"])):
        runs[name] = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["rerank", "--model", str(trained), "--predictions", str(preds),
                                     "--output", str(runs[name]), "--threads", "1", *extra])
        assert result.exit_code == 0, result.output
    derived = tmp_path / "derived.jsonl"
    result = runner.invoke(app, ["sample-filter", "--predictions", str(preds), "--reranked", str(runs["all"]),
                                 "--output", str(derived), "--gamma", "0.5"])
    assert result.exit_code == 0, result.output
    assert [json.loads(x) for x in derived.open()] == [json.loads(x) for x in runs["filtered"].open()]
    assert derived.read_text() != runs["all"].read_text()  # the filter did keep some recogniser labels


def test_rerank_resumes_after_a_crash_and_reports_bad_lines(trained, tmp_path):
    preds = tmp_path / "preds.jsonl"
    original = fake_predictions(preds, n_posts=4, seed=1)
    with preds.open("a") as handle:
        handle.write("{not json\n")
    out = tmp_path / "out.jsonl"
    finished = {**original[0], "marker": "already done"}
    out.write_text(json.dumps(finished) + "\n" + json.dumps(original[1])[:40])  # torn second line
    result = runner.invoke(app, ["rerank", "--model", str(trained), "--predictions", str(preds),
                                 "--output", str(out), "--all", "--k", "3", "--threads", "1"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.open()]
    assert [p["id"] for p in lines] == [p["id"] for p in original]
    assert lines[0] == finished  # kept, not redone
    for post in lines[1:]:
        assert all(len(e["scores"]["rerank"]["candidates"]) == 3 for e in post["entities"])
    assert "preds.jsonl:5" in result.output and "not valid JSON" in result.output
    assert "1 already there" in result.output


def test_generate_mode_and_calibration(trained, tmp_path):
    preds = tmp_path / "dev_preds.jsonl"
    fake_predictions(preds, n_posts=8, seed=2)
    reranked = tmp_path / "dev_reranked_all.jsonl"
    result = runner.invoke(app, ["rerank", "--model", str(trained), "--predictions", str(preds), "--output",
                                 str(reranked), "--all", "--mode", "generate", "--threads", "1"])
    assert result.exit_code == 0, result.output
    for post in map(json.loads, reranked.open()):
        for entity in post["entities"]:
            record = entity["scores"]["rerank"]
            assert record["choice"] in record["candidates"] and record["mapped_by"] and record["logprobs"] is None
    plot, numbers = tmp_path / "gamma.png", tmp_path / "gamma.json"
    result = runner.invoke(app, ["calibrate-gamma", "--predictions", str(preds), "--reranked", str(reranked),
                                 "--dataset", "fmnerg", "--bins", "3", "--plot", str(plot), "--json", str(numbers)])
    assert result.exit_code == 0, result.output
    assert "chosen gamma" in result.output
    with Image.open(plot) as image:
        assert image.format == "PNG"
    payload = json.loads(numbers.read_text())
    assert payload["n_entities"] > 0 and payload["missing_rerank"] == 0 and 1 <= len(payload["bins"]) <= 3


def flat(text: str) -> str:
    return " ".join(text.split())


def test_clear_errors(tmp_path):
    preds = tmp_path / "p.jsonl"
    preds.write_text("")
    missing = runner.invoke(app, ["rerank", "--model", "llava-hf/llava-1.5-7b-hf", "--predictions", str(preds),
                                  "--output", str(tmp_path / "o.jsonl")])
    assert missing.exit_code == 2 and "llava-hf/llava-1.5-7b-hf" in flat(missing.output)
    absent = runner.invoke(app, ["rerank", "--model", "x", "--predictions", str(tmp_path / "none.jsonl"),
                                 "--output", str(tmp_path / "o.jsonl")])
    assert absent.exit_code == 2 and "no such predictions file" in flat(absent.output)
    bad = runner.invoke(app, ["train", "reranker", "--model", "x", "--k", "0", "--output", str(tmp_path / "r")])
    assert bad.exit_code == 2 and "--k" in flat(bad.output)  # refused by the option's range
    shots = runner.invoke(app, ["rerank", "--model", "x", "--predictions", str(preds), "--output",
                                str(tmp_path / "o.jsonl"), "--few-shot", "4"])
    assert shots.exit_code == 2 and "--few-shot" in flat(shots.output)
