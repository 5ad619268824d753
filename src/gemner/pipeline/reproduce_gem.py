"""`gemner reproduce --config paper-tiny | paper`: the whole GEM path with images, its ablations, and a
ready pipeline folder.

The run is a plan of steps (`plan_steps`), each writing one file or folder under
`<runs>/<dataset>/<config>/` with the library call of a `gemner` command (`reproduce_gem_work`):
captions -> knowledge -> recognisers (GEM, and the w/o-KA, w/o-MGP, w/o-MGA ones) -> reranker trained with
images -> ITM fine-tune with its threshold tuned on dev -> the pipeline folder -> one test prediction per
Fig. 3 row with the whole pipeline. A step whose output is complete is reused, so an interrupted run
continues where it stopped; `plan.txt` lists each step's equivalent command. The scores and the targets
are in `reproduce_gem_report`.

`paper-tiny` runs on a CPU in minutes: the shipped MiniLM encoder, a tiny BLIP captioner, a tiny LLaVA and
a tiny BLIP ITM built from configs and trained from scratch, and knowledge that is the caption itself ("The
image shows <caption>.", no LLM). `paper` names the paper's models (BERT-base, LLaVA-1.5-7B, BLIP ITM base
COCO, BLIP-2 captions + an LLM's explanation) and needs their weights and, for training in reasonable time,
a GPU. docs/reproduce.md lists every difference.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.folders import is_folder_source
from . import reproduce_gem_work as work
from .reproduce import count_lines, training_finished
from .reproduce_gem_profiles import GemProfile, gem_profile

Log = Callable[[str], None]
PIPELINE_DIR = "pipeline"
ROW_NAMES = ("GEM", "w/o-KA", "w/o-MGP", "w/o-MGA", "w/o-SF", "w/o-CR", "GEM-wo", "centre-box")
TEXT_ONLY = "text-only recogniser"  # w/o-KA recogniser alone: what the text decides, for the look-alike target
# recogniser variants: folder name -> (changes to the recogniser config, trained with the knowledge file)
RECOGNISERS: dict[str, tuple[dict[str, Any], bool]] = {
    "gem": ({}, True), "wo-ka": ({}, False), "wo-mgp": ({"mgp": False}, True), "wo-mga": ({"mga": False}, True)}


@dataclass
class GemSettings:
    dataset: str  # fmnerg | gmner | an upstream folder (`gemner data synthetic`)
    config: str = "paper-tiny"  # paper-tiny | paper
    runs: Path = Path("runs/reproduce")
    images: Path | None = None  # the posts' images (a folder dataset's own images/ by default)
    device: str = "auto"
    quick: bool = False
    threads: int = 1  # CPU threads of the run
    jobs: int = 1  # independent steps (`GemStep.group`) run side by side in this many processes, sharing the threads

    @property
    def name(self) -> str:
        return Path(self.dataset).resolve().name if is_folder_source(self.dataset) else self.dataset

    @property
    def folder(self) -> Path:
        return self.runs / self.name / self.config

    def profile(self) -> GemProfile:
        return gem_profile(self.config, self.quick)


@dataclass
class GemStep:
    name: str  # short key: captions, knowledge, recogniser gem, ..., row GEM
    description: str
    output: Path
    command: list[str] | None  # the equivalent `gemner` arguments; None: a library step (see description)
    work: Callable[[], object] = field(repr=False)
    done: Callable[[], bool] = field(repr=False)
    group: str | None = None  # consecutive steps of one group need none of each other's outputs


def _file_done(path: Path, lines: int | None = None) -> Callable[[], bool]:
    return lambda: path.exists() and (lines is None or count_lines(path) >= lines)


def plan_steps(settings: GemSettings, log: Log = print) -> list[GemStep]:
    """Every step of the run, in order; nothing runs (each step's `work` does its part when called)."""
    profile, folder, data = settings.profile(), settings.folder, settings.dataset
    inputs = work.Inputs(data, settings.images, profile, settings.device, settings.threads, log)
    images = ["--images", str(settings.images)] if settings.images else []
    captions, knowledge = folder / "captions.jsonl", folder / "knowledge.jsonl"
    captioner = folder / "captioner" if profile.captioner is None else None
    steps = []
    if captioner is not None:
        from ..knowledge.captioner_train import DONE_FILE as CAPTIONER_DONE

        steps.append(GemStep(
            "captioner", "tiny BLIP captioner trained from scratch on the train split's reference captions",
            captioner, None, lambda: work.train_captioner(inputs, captioner),
            _file_done(captioner / CAPTIONER_DONE)))
    steps += [
        GemStep("captions", profile.captions_description, captions, profile.captions_command(data, captions),
                lambda: work.write_captions(inputs, captions, captioner), _file_done(captions)),
        GemStep("knowledge", profile.knowledge_description, knowledge, profile.knowledge_command(data, captions),
                lambda: work.write_knowledge(inputs, captions, knowledge), _file_done(knowledge)),
    ]
    recognisers = {}
    for variant, (changes, with_knowledge) in RECOGNISERS.items():
        out = recognisers[variant] = folder / "recognizers" / variant
        ablation = [f"--no-{key}" for key in changes]
        flags = ablation + (["--knowledge", str(knowledge)] if with_knowledge else [])
        command = ["train", "recognizer", "--dataset", data, "--preset", profile.recognizer_preset, "--encoder",
                   profile.encoder, "--epochs", str(profile.recognizer_epochs), *flags, "--output", str(out),
                   "--no-progress", *profile.limit_flags("--max-train-posts", "--max-dev-posts")]
        steps.append(GemStep(
            f"recogniser {variant}", f"recogniser {variant} ({profile.encoder}, "
            f"{'with' if with_knowledge else 'no'} knowledge{''.join(', ' + f for f in ablation)})",
            out, command, _bind(work.train_recogniser, inputs, out, changes, knowledge if with_knowledge else None),
            lambda out=out: training_finished(out), group="recognisers"))
    llava, itm = folder / "base" / "llava", folder / "base" / "itm"
    if profile.tiny:
        steps.append(GemStep("base models", "tiny LLaVA and tiny BLIP ITM built from configs (random init)",
                             folder / "base", None, lambda: work.build_tiny_bases(inputs, llava, itm),
                             _file_done(itm / "config.json")))
    reranker_base = str(llava) if profile.tiny else profile.reranker_model
    itm_base = str(itm) if profile.tiny else profile.itm_model
    reranker, grounder = folder / "reranker", folder / "grounder"
    train_predictions = folder / "train-predictions.jsonl"
    if profile.rerank_sent_only:
        steps.append(GemStep(
            "train predictions", "the GEM recogniser's predictions of the train split (entropies for the filter)",
            train_predictions, ["predict", "--config", "lite", "--recognizer", str(recognisers["gem"]),
                                "--knowledge", str(knowledge), "--no-rerank", "--no-ground", "--dataset", data,
                                "--split", "train", "--output", str(train_predictions),
                                *profile.limit_flags("--max-posts")],
            lambda: work.predict_train_split(inputs, recognisers["gem"], knowledge, train_predictions),
            _file_done(train_predictions, len(inputs.posts("train")))))
    sent = f", on the entities the filter sends (gamma {profile.gamma})" if profile.rerank_sent_only else ""
    steps.append(GemStep(
        "reranker", f"reranker: LoRA on {Path(reranker_base).name}, trained with each post's image{sent}",
        reranker, ["train", "reranker", "--dataset", data, *images, "--model", reranker_base, "--output",
                   str(reranker), *profile.reranker_flags(train_predictions)],
        lambda: work.train_reranker(inputs, reranker_base, reranker,
                                    train_predictions if profile.rerank_sent_only else None),
        _file_done(reranker / "dev_accuracy.json"), group="reranker and ITM"))
    steps.append(GemStep(
        "grounder", f"ITM fine-tuned from {Path(itm_base).name}, P_T threshold tuned on dev", grounder,
        ["train", "grounder", "--dataset", data, "--images", str(_images(settings)), "--model",
         itm_base, "--output", str(grounder), *profile.grounder_flags(), *profile.limit_flags("--max-posts")],
        lambda: work.train_grounder(inputs, itm_base, grounder), _file_done(grounder / "grounder.json"),
        group="reranker and ITM"))
    pipeline = folder / PIPELINE_DIR
    steps.append(GemStep(
        "pipeline folder", "ready pipeline folder: gemner.yaml (paths relative to it) + the checkpoints", pipeline,
        None, lambda: work.write_pipeline_folder(pipeline, recognisers["gem"], reranker, grounder, knowledge, profile),
        _file_done(pipeline / "gemner.yaml")))
    posts = len(inputs.test_posts())
    for row, (changes, recogniser) in row_configs(itm_base).items():
        out = folder / "rows" / f"{_slug(row)}.jsonl"
        rec = recognisers[recogniser] if recogniser else None
        edit = CONFIG_EDITS.get(row, "").format(itm=itm_base)
        steps.append(GemStep(
            f"row {row}", f"{row}: test predicted by the whole pipeline{edit}", out,
            ["predict", "--config", str(pipeline), "--dataset", data, *images, "--split", "test", "--output",
             str(out), *row_flags(row, rec), *profile.predict_flags(settings.quick)],
            _bind(work.predict_row, inputs, pipeline, changes, rec, out), _file_done(out, posts), group="rows"))
    return steps


def _images(settings: GemSettings) -> Path | str:
    if settings.images is not None:
        return settings.images
    return Path(settings.dataset) / "images" if is_folder_source(settings.dataset) else "DIR"


def _bind(function: Callable[..., object], *args: Any) -> Callable[[], object]:
    return lambda: function(*args)


def _slug(row: str) -> str:
    return row.lower().replace("/", "").replace(" ", "-")


def row_configs(itm_base: str) -> dict[str, tuple[dict[str, Any], str | None]]:
    """Each Fig. 3 row as (configuration changes of the GEM pipeline, recogniser variant or None: GEM's)."""
    from .config import ABLATIONS

    return {
        "GEM": ({}, None),
        "w/o-KA": (ABLATIONS["w/o-KA"], "wo-ka"),
        "w/o-MGP": ({}, "wo-mgp"),
        "w/o-MGA": ({}, "wo-mga"),
        "w/o-SF": (ABLATIONS["w/o-SF"], None),
        "w/o-CR": (ABLATIONS["w/o-CR"], None),
        "GEM-wo": ({"ground": {"itm_model": itm_base, "threshold": 0.5}}, None),  # the ITM as it was before tuning
        "centre-box": (ABLATIONS["centre-box"], None),
        TEXT_ONLY: ({"knowledge": {"enabled": False}, "rerank": {"enabled": False}, "ground": {"enabled": False}},
                    "wo-ka"),
    }


# rows whose `gemner predict` needs an edited copy of gemner.yaml (no switch sets these)
CONFIG_EDITS = {"GEM-wo": " (gemner.yaml edited: ground.itm_model {itm}, threshold 0.5)"}


def row_flags(row: str, recogniser: Path | None) -> list[str]:
    """The `gemner predict` switches of a row."""
    flags = ["--recognizer", str(recogniser)] if recogniser else []
    switches = {"w/o-KA": ["--no-knowledge"], "w/o-SF": ["--no-filter"], "w/o-CR": ["--no-rerank"],
                "centre-box": ["--centre-box"],
                TEXT_ONLY: ["--no-knowledge", "--no-rerank", "--no-ground"]}
    return flags + switches.get(row, [])


@dataclass
class GemRun:
    settings: GemSettings
    steps: list[GemStep]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def output(self, name: str) -> Path | None:
        step = next(s for s in self.steps if s.name == name)
        return step.output if step.done() else None


def run_gem_steps(settings: GemSettings, log: Log = print) -> GemRun:
    """Run every step not yet done, in order (CPU seconds of each recorded; a failed step is reported and
    the steps that need it fail in turn); writes `plan.txt` and `steps.json`. With `settings.jobs` > 1 the
    steps of one group run side by side in worker processes, each with its share of the threads."""
    import torch

    torch.set_num_threads(settings.threads)
    run = GemRun(settings, plan_steps(settings, log))
    timings = settings.folder / "steps.json"
    earlier = json.loads(timings.read_text()) if timings.is_file() else {}
    write_plan(run)
    with _Workers(settings) as workers:
        for group in consecutive_groups(run.steps):
            pending = []
            for step in group:
                if step.done():
                    run.cpu_seconds[step.name] = earlier.get(step.name, 0.0)
                else:
                    pending.append(step)
            if len(pending) > 1 and settings.jobs > 1:
                outcomes = workers.run(pending, log)
            else:
                outcomes = [(step, *_run_step(step, log)) for step in pending]
            for step, seconds, failure in outcomes:
                _record(run, step, seconds, failure, log)
                timings.write_text(json.dumps(run.cpu_seconds, indent=2))
    return run


def consecutive_groups(steps: list[GemStep]) -> list[list[GemStep]]:
    """Runs of consecutive steps with the same `group`; a step without one stands alone."""
    groups: list[list[GemStep]] = []
    for step in steps:
        if groups and step.group is not None and groups[-1][-1].group == step.group:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _run_step(step: GemStep, log: Log, announce: bool = True) -> tuple[float | None, str | None]:
    """(CPU seconds, None) or (None, the failure); `announce`: log the step's heading first."""
    if announce:
        log(f"[{step.name}] {step.description}")
    started = time.process_time()
    try:
        step.work()
    except Exception as err:  # reported; the cells that need this step say "not run"
        return None, f"{type(err).__name__}: {err}"
    return round(time.process_time() - started, 1), None


def _record(run: GemRun, step: GemStep, seconds: float | None, failure: str | None, log: Log) -> None:
    if failure is None and not step.done():
        failure = f"{step.output} was not completed"
    if seconds is not None:
        run.cpu_seconds[step.name] = seconds
    if failure is not None:
        run.failed[step.name] = failure
        log(f"  failed: {failure}")


class _Workers:
    """Worker processes for the steps of a group, started on first use and reused by the later groups (each
    imports torch once). Spawned, not forked: a fork of a process whose torch thread pools have started can
    hang. A worker rebuilds the plan from the settings (steps hold closures, which do not pickle) and runs
    the step it is named."""

    def __init__(self, settings: GemSettings) -> None:
        self.settings = settings
        self.pool = None

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def run(self, steps: list[GemStep], log: Log) -> list[tuple[GemStep, float | None, str | None]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.settings.jobs, mp_context=multiprocessing.get_context("spawn"))
        threads = max(1, self.settings.threads // self.settings.jobs)
        for step in steps:
            log(f"[{step.name}] {step.description} (side by side, {threads} thread{'s' * (threads > 1)})")
        futures = [self.pool.submit(_run_in_worker, self.settings, step.name, threads) for step in steps]
        outcomes = []
        for step, future in zip(steps, futures, strict=True):
            try:
                lines, seconds, failure = future.result()
            except Exception as err:  # the worker itself died (killed, out of memory)
                lines, seconds, failure = [], None, f"{type(err).__name__}: {err}"
            for line in lines:
                log(f"  [{step.name}] {line}")
            outcomes.append((step, seconds, failure))
        return outcomes


def _run_in_worker(settings: GemSettings, name: str, threads: int) -> tuple[list[str], float | None, str | None]:
    """In a worker process: run the step `name` of the plan; its log lines come back with the outcome."""
    import torch

    torch.set_num_threads(threads)
    lines: list[str] = []
    step = next(step for step in plan_steps(settings, lines.append) if step.name == name)
    seconds, failure = _run_step(step, lines.append, announce=False)  # the parent said the heading
    return lines, seconds, failure


def write_plan(run: GemRun) -> Path:
    path = run.settings.folder / "plan.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(describe_step(step) for step in run.steps))
    return path


def describe_step(step: GemStep) -> str:
    command = f"$ gemner {shlex.join(step.command)}" if step.command else "(a library step, no single command)"
    return f"{step.name}: {step.description}\n  -> {step.output}\n  {command}\n"
