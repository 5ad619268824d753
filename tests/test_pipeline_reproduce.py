"""`gemner reproduce`: steps are skipped when done, failures are reported, tables come from the files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import load_dataset
from gemner.data.userio import PredictionWriter, prediction_record
from gemner.evaluation import gold_as_predictions
from gemner.pipeline.reproduce import FMNERG_VARIANTS, NEEDS_IMAGES, Reproduction, Settings, count_lines
from gemner.pipeline.tables import build_results, run_reproduction


def test_a_finished_step_is_not_run_again_and_a_failed_one_is_reported(tmp_path: Path) -> None:
    messages: list[str] = []
    rep = Reproduction(Settings("fmnerg", tmp_path), log=messages.append)
    done = tmp_path / "done.txt"
    done.write_text("x")

    def must_not_run() -> None:
        pytest.fail("a finished step ran again")

    def broken() -> None:
        raise ValueError("no such model")

    assert rep.run("already there", done, ["some-command"], must_not_run) == done
    assert messages == []  # nothing ran
    assert rep.run("broken", tmp_path / "never.txt", ["other-command", "--flag"], broken) is None
    assert any("failed" in m and "no such model" in m for m in messages)
    partial = tmp_path / "partial.jsonl"
    partial.write_text("{}\n")
    assert rep.run("cut short", partial, ["predict"], lambda: partial.write_text("{}\n{}\n"), lines=2) == partial
    assert count_lines(partial) == 2  # a file with too few lines is not a finished step
    plan = rep.write_plan().read_text()
    assert "already there" in plan and "$ gemner some-command" in plan and "$ gemner other-command --flag" in plan


def _write(path: Path, posts, predictions) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with PredictionWriter(path, resume=False) as writer:
        for post in posts:
            writer.write(prediction_record(post, predictions[post.id]))


def test_tables_are_built_from_the_run_files(tmp_path: Path) -> None:
    """Fake every step's output (gold as predictions for 20 test posts): no model runs, 100 everywhere."""
    posts = load_dataset("fmnerg", "test").posts[:100]  # a quick run predicts 100 test posts
    gold = gold_as_predictions(posts)
    for entities in gold.values():
        for e in entities:
            e.box = None  # a recogniser predicts no box
    settings = Settings("fmnerg", tmp_path, quick=True, knowledge_dir=tmp_path / "no-knowledge")
    folder = settings.folder
    (folder / "reranker").mkdir(parents=True)
    (folder / "reranker" / "reranker.json").write_text("{}")
    for variant in FMNERG_VARIANTS:
        (folder / variant.name).mkdir(parents=True, exist_ok=True)
        (folder / variant.name / "config.json").write_text("{}")
        for name in ("test.jsonl", "dev.jsonl", *(f"test.{kind}.k{k}.jsonl" for kind in ("rerank-all", "sf0.2")
                                                  for k in (3, 5, 7)), "dev.rerank-all.k5.jsonl"):
            _write(folder / variant.name / name, posts, gold)
    (folder / "fig5_gamma.json").write_text(json.dumps({"crossing_gamma": 0.31, "best_gamma": 0.4,
                                                        "chosen_gamma": 0.31}))
    _write(folder / "gem" / "test.sf0.31.k5.jsonl", posts, gold)  # the filter at the calibrated gamma
    rep = Reproduction(settings, log=lambda m: pytest.fail(f"nothing should run: {m}"))
    results = build_results(rep)
    by_title = {t.title.split(":")[0]: t for t in results.tables}
    table_1 = by_title["Table 1 (our rows)"]
    assert [name for name, _ in table_1.rows[:4]] == [
        "GEM-lite (MiniLM) recogniser, grounded", "GEM-lite (MiniLM) recogniser, every box None",
        "GEM-lite (MiniLM) + SF + rerank, grounded", "GEM-lite (MiniLM) + SF + rerank, every box None"]
    grounded, none_boxes = table_1.rows[2][1], table_1.rows[3][1]
    assert grounded[0] == NEEDS_IMAGES and grounded[1] == pytest.approx(100.0)
    assert none_boxes[1] == pytest.approx(100.0) and none_boxes[0] < 100.0  # MNERG misses groundable ones
    assert all(cell == pytest.approx(100.0) for _, cells in by_title["Table 2"].rows[:4] for cell in cells)
    assert [name for name, _ in by_title["Fig. 3 ablation"].rows] == ["GEM", "w/o-MGP", "w/o-MGA", "w/o-SF", "w/o-CR"]
    recogniser_rows = [name for name, _ in by_title["Recogniser alone"].rows]
    assert recogniser_rows == ["gem", "ka-gazetteer", "wo-mgp", "wo-mga", "softmax"]  # no LLM knowledge file here
    assert by_title["Fig. 5 / Appendix E"].rows[0][1] == [0.31]
    assert by_title["Fig. 5 / Appendix E"].rows[3] == ("test fine MNER F1, SF at gamma 0.31 + rerank", [100.0])
    assert all(f.is_file() for f in results.figures if f.suffix == ".png" and "fig3" in f.name)


def test_report_only_runs_nothing_and_says_what_is_missing(tmp_path: Path) -> None:
    posts = load_dataset("fmnerg", "test").posts
    settings = Settings("fmnerg", tmp_path, knowledge_dir=tmp_path / "no-knowledge", report_only=True)
    gem = settings.folder / "gem"
    gem.mkdir(parents=True)
    (gem / "config.json").write_text("{}")
    (settings.folder / "reranker").mkdir()
    (settings.folder / "reranker" / "reranker.json").write_text("{}")

    def tables():
        rep = Reproduction(settings, log=lambda m: pytest.fail(f"nothing should run: {m}"))
        return rep, {t.title.split(":")[0]: dict(t.rows) for t in build_results(rep).tables}

    _write(gem / "test.jsonl", posts[:10], gold_as_predictions(posts[:10]))  # a prediction run cut short
    _, by_title = tables()
    assert by_title["Recogniser alone"]["gem"] == ["not run"] * 3 + [None]  # a partial file is not a result
    _write(gem / "test.jsonl", posts, gold_as_predictions(posts))
    rep, by_title = tables()
    alone = by_title["Recogniser alone"]
    assert alone["gem"][2] == pytest.approx(100.0) and alone["wo-mgp"] == ["not run"] * 3 + [None]
    assert by_title["Fig. 3 ablation"]["w/o-CR"] == [alone["gem"][2]]
    assert by_title["Fig. 3 ablation"]["GEM"] == ["not run"]
    planned = rep.write_plan().read_text()
    assert "rerank --model" in planned and "--gamma 0.2 --k 3" in planned  # the K sweep reranks SF entities only


def test_an_unfinished_training_run_is_resumed_not_reused(tmp_path: Path) -> None:
    from gemner.pipeline.reproduce import training_finished

    settings = Settings("fmnerg", tmp_path, knowledge_dir=tmp_path / "none", report_only=True)
    run = settings.folder / "gem"
    (run / "last").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"recognizer": {"epochs": 12}}))
    (run / "last" / "trainer_state.json").write_text(json.dumps({"epoch": 3, "batch": 0}))
    assert not training_finished(run)  # the best checkpoint of epoch 3 exists, the run is not over
    rep = Reproduction(settings, log=lambda m: pytest.fail(f"nothing should run: {m}"))
    assert rep.recognizer(FMNERG_VARIANTS[0]) is None
    assert "--resume" in rep.plan[-1].command
    (run / "last" / "trainer_state.json").write_text(json.dumps({"epoch": 12, "batch": 0}))
    assert training_finished(run) and rep.recognizer(FMNERG_VARIANTS[0]) == run
    (run / "last").rename(run / "last.tmp")  # a crash between writing the new state and renaming it
    (run / "last.tmp" / "trainer_state.json").write_text(json.dumps({"epoch": 5, "batch": 0}))
    assert not training_finished(run) and rep.recognizer(FMNERG_VARIANTS[0]) is None
    assert "--resume" in rep.plan[-1].command


def test_a_tiny_reproduction_runs_every_step_in_process_and_resumes(tmp_path: Path, monkeypatch, encoder_dir: str,
                                                                    tiny_causal_lm: str) -> None:
    """Tiny random models on a few real posts: each step trains, predicts, reranks or scores for real,
    a finished reproduction runs nothing again, and a prediction file cut short is completed."""
    from gemner.pipeline import reproduce

    for name, size in (("QUICK_TRAIN_POSTS", 24), ("QUICK_DEV_POSTS", 8), ("QUICK_TEST_POSTS", 8),
                       ("QUICK_RERANKER_ENTITIES", 4)):
        monkeypatch.setattr(reproduce, name, size)
    settings = Settings("fmnerg", tmp_path / "runs", quick=True, variants=("gem",), encoder=encoder_dir,
                        reranker_model=tiny_causal_lm, knowledge_dir=tmp_path / "none")
    messages: list[str] = []
    results = run_reproduction(settings, log=messages.append)
    assert not [m for m in messages if "failed" in m], messages
    assert json.loads(results.results_file.read_text())["tables"][0]["title"].startswith("Table 1")
    plan = results.plan_file.read_text()
    assert "$ gemner train recognizer --dataset fmnerg --preset lite" in plan and "$ gemner calibrate-gamma" in plan
    gem = settings.folder / "gem"
    assert count_lines(gem / "test.jsonl") == 8 and count_lines(gem / "test.sf0.2.k5.jsonl") == 8
    assert (settings.folder / "reranker" / "reranker.json").is_file() and (settings.folder / "fig5_gamma.png").is_file()
    by_title = {t.title.split(":")[0]: dict(t.rows) for t in results.tables}
    assert all(isinstance(cell, float) for cell in by_title["Recogniser alone"]["gem"][:3])
    assert all(isinstance(cells[0], float) for name, cells in by_title["Fig. 3 ablation"].items()
               if name in ("GEM", "w/o-SF", "w/o-CR"))
    ran = [m for m in messages if m.startswith("[")]
    assert ran[0].startswith("[recogniser gem] gemner train recognizer") and len(ran) == len(set(ran))

    lines = (gem / "test.jsonl").read_text().splitlines(keepends=True)
    (gem / "test.jsonl").write_text("".join(lines[:3]))  # a prediction run cut short
    again: list[str] = []
    build_results(Reproduction(settings, log=again.append))
    assert [m.split("]")[0] for m in again if m.startswith("[")] == ["[predict gem test"]
    assert (gem / "test.jsonl").read_text().splitlines()[:3] == [line.rstrip("\n") for line in lines[:3]]
    assert count_lines(gem / "test.jsonl") == 8


@pytest.mark.slow
def test_quick_reproduction_with_tiny_models(tmp_path: Path, encoder_dir: str, tiny_causal_lm: str) -> None:
    """The whole quick plan through the command line (a few minutes on 2 cores): `pytest -m slow`."""
    result = CliRunner().invoke(app, ["reproduce", "--quick", "--dataset", "fmnerg", "--encoder", encoder_dir,
                                      "--reranker-model", tiny_causal_lm, "--variants", "gem,wo-mgp", "--runs",
                                      str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "runs" / "fmnerg" / "results.json").read_text())
    ablation = next(t for t in results["tables"] if t["title"].startswith("Fig. 3"))
    assert isinstance(ablation["rows"][0][1], float)


def test_bar_chart_draws_bars_below_the_first_round_tick(tmp_path: Path) -> None:
    from PIL import Image

    from gemner.pipeline.charts import bar_chart

    # 49.12 - 2 = 47.12 gives round ticks from 50 up: the lowest bar sits below the first tick
    path = bar_chart(tmp_path / "fig3.png", ["GEM", "w/o-SF", "w/o-CR", "w/o-MGP"], [58.15, 49.12, 59.36, None],
                     title="ablation", ylabel="MNER F1")
    image = Image.open(path)
    assert image.size == (760, 460) and len(image.getcolors(1 << 16)) > 3  # bars and text were drawn
