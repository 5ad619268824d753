"""`gemner reproduce`: train and evaluate what this machine can, then print the paper's tables.

The reproduction is a plan of steps, each writing one file or folder under `runs/reproduce/<dataset>/`
with the library function a `gemner` command calls (`reproduce_steps.py`). A step whose output is
complete is skipped, so an interrupted reproduction continues where it stopped and finished runs are
reused; every table cell can be traced to the equivalent command (`plan.txt`). Cells this machine
cannot compute (no images, no vision weights) say what they need instead of a number.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import Dataset, load_dataset
from ..data.userio import read_predictions
from ..evaluation import ScoreReport, score
from ..paths import knowledge_dir
from ..recognize.checkpoint import CONFIG_FILE, STATE_FILE, find_training_state
from ..recognize.train import LAST
from ..rerank.config import PAPER_GAMMA, PAPER_K
from . import reproduce_steps as steps

NEEDS_IMAGES = "needs images*"
NEEDS_IMAGES_NOTE = ("* needs the tweet images (IJCAI2019_data.zip, see README) and BLIP ITM weights: "
                     "gemner predict --config paper --dataset fmnerg --images DIR, then gemner evaluate")
QUICK_TRAIN_POSTS, QUICK_DEV_POSTS, QUICK_TEST_POSTS, QUICK_RERANKER_ENTITIES = 300, 100, 100, 24


@dataclass(frozen=True)
class Variant:
    name: str
    role: str
    changes: tuple[tuple[str, Any], ...] = ()  # recogniser settings that differ from the lite preset
    knowledge: str = "none"  # "none"; "gazetteer": hints from train annotations; "llm": the offline LLM's

    def train_flags(self) -> list[str]:
        """`changes` as `gemner train recognizer` options (`mgp=False` -> `--no-mgp`)."""
        flags: list[str] = []
        for name, value in self.changes:
            flags += [f"--no-{name}"] if value is False else [f"--{name.replace('_', '-')}", str(value)]
        return flags


# GEM-lite ships without knowledge (the lite preset): on dev, neither knowledge source beat it (README).
FMNERG_VARIANTS = (
    Variant("gem", "GEM-lite recogniser: MGP + MGA, no knowledge (as the lite preset ships)"),
    Variant("ka-gazetteer", "+ KA: gazetteer hints from the train annotations (our deviation)", knowledge="gazetteer"),
    Variant("ka-llm", "+ KA: the offline LLM's explanations (paper KA)", knowledge="llm"),
    Variant("wo-mgp", "w/o-MGP: fine path alone (the 'base model' of Table 2)", (("mgp", False),)),
    Variant("wo-mga", "w/o-MGA: both paths, no M", (("mga", False),)),
    Variant("softmax", "per-word softmax head, fine path alone", (("head", "softmax"), ("mgp", False))),
)
GMNER_VARIANTS = (
    Variant("gem", "GEM-lite recogniser (one path + CRF), no knowledge"),
    Variant("ka-gazetteer", "+ KA: gazetteer hints from the train annotations", knowledge="gazetteer"),
    Variant("ka-llm", "+ KA: the offline LLM's explanations (paper KA)", knowledge="llm"),
)
RERANKED_VARIANTS = ("gem", "wo-mgp", "wo-mga")


@dataclass
class Settings:
    dataset: str
    runs: Path
    quick: bool = False
    encoder: str | None = None
    reranker_model: str | None = None
    variants: tuple[str, ...] | None = None
    gamma: float = PAPER_GAMMA
    k: int = PAPER_K
    threads: int = 1
    recognizers_only: bool = False  # train and predict the recogniser variants, nothing after them
    report_only: bool = False  # run nothing: tables from the finished steps, the rest "not run"
    knowledge_dir: Path | None = None  # None: the shipped knowledge files

    @property
    def folder(self) -> Path:
        return self.runs / self.dataset

    def knowledge_folder(self) -> Path:
        return self.knowledge_dir if self.knowledge_dir is not None else knowledge_dir()


def count_lines(path: Path) -> int:
    """Complete lines of a file (a line torn by a crash does not count)."""
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def training_state(folder: Path) -> Path | None:
    """The resumable state of the recogniser run in `folder` (also one a crash left half-renamed)."""
    return find_training_state(folder / LAST)


def training_finished(folder: Path) -> bool:
    """A recogniser run that went through all its epochs (its best checkpoint exists from the first
    epoch on, so `config.json` alone does not say the run is over)."""
    if not (folder / CONFIG_FILE).is_file():
        return False
    state = training_state(folder)
    if state is None:  # a checkpoint without its resumable state: taken as final
        return True
    epochs = json.loads((folder / CONFIG_FILE).read_text())["recognizer"]["epochs"]
    progress = json.loads((state / STATE_FILE).read_text())
    return progress["epoch"] >= epochs and progress.get("batch", 0) == 0


def is_complete(output: Path, lines: int | None) -> bool:
    """`output` exists and, for a JSONL written post by post, holds `lines` lines (a partial file is
    finished by rerunning its resumable step)."""
    return output.exists() and (lines is None or count_lines(output) >= lines)


@dataclass
class Step:
    description: str
    output: Path
    command: list[str]  # the equivalent `gemner` arguments, for the plan file


@dataclass
class Reproduction:
    settings: Settings
    log: Callable[[str], None] = print
    plan: list[Step] = field(default_factory=list)
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    def dataset(self, split: str) -> Dataset:
        """The benchmark split, read once: steps and scores ask for it many times."""
        if split not in self._datasets:
            self._datasets[split] = load_dataset(self.settings.dataset, split)
        return self._datasets[split]

    # ----------------------------------------------------------------- running steps
    def run(self, description: str, output: Path, command: Sequence[str], work: Callable[[], object], *,
            lines: int | None = None, force: bool = False) -> Path | None:
        """Do `work` (what `gemner COMMAND` does) unless `output` is complete; None when it failed (reported)
        or, with `report_only`, was not run."""
        self.plan.append(Step(description, output, list(command)))
        if not force and is_complete(output, lines):
            return output
        if self.settings.report_only:
            return None
        self.log(f"[{description}] gemner {shlex.join(command)}")
        self._use_threads()
        try:
            work()
        except Exception as err:  # a failed step is reported; the cells that need it say "not run"
            self.log(f"  failed: {type(err).__name__}: {err}")
            return None
        if not output.exists():
            self.log(f"  failed: {output} was not written")
            return None
        return output

    def _use_threads(self) -> None:
        import torch

        torch.set_num_threads(self.settings.threads)

    def _quick(self, full: tuple[str, ...], quick: tuple[str, ...]) -> tuple[str, ...]:
        return quick if self.settings.quick else full

    def _limit(self, quick: int) -> int | None:
        return quick if self.settings.quick else None

    # ----------------------------------------------------------------- the stages
    def knowledge_file(self, kind: str) -> Path | None:
        if kind == "none":
            return None
        name = f"{self.settings.dataset}-gazetteer.jsonl.gz" if kind == "gazetteer" else "fmnerg-smollm2-135m.jsonl.gz"
        path = self.settings.knowledge_folder() / name
        return path if path.is_file() else None

    def variants(self) -> list[Variant]:
        pool = FMNERG_VARIANTS if self.dataset("dev").schema.hierarchical else GMNER_VARIANTS
        chosen = [v for v in pool if self.settings.variants is None or v.name in self.settings.variants]
        return [v for v in chosen if v.knowledge != "llm" or self.knowledge_file("llm") is not None]

    def recognizer(self, variant: Variant) -> Path | None:
        out = self.settings.folder / variant.name
        knowledge = self.knowledge_file(variant.knowledge)
        quick = self.settings.quick
        args = ["train", "recognizer", "--dataset", self.settings.dataset, "--preset", "lite", "--output", str(out),
                "--threads", str(self.settings.threads), "--no-progress", *variant.train_flags()]
        args += ["--knowledge", str(knowledge)] if knowledge else []
        args += ["--encoder", self.settings.encoder] if self.settings.encoder else []
        args += list(self._quick((), ("--max-train-posts", str(QUICK_TRAIN_POSTS), "--epochs", "1",
                                      "--max-dev-posts", str(QUICK_DEV_POSTS))))
        if training_finished(out):
            self.plan.append(Step(f"recogniser {variant.name}", out, args))
            return out
        resume = training_state(out) is not None
        args += ["--resume"] if resume else []

        def work() -> None:
            steps.train_recognizer_step(
                self.settings.dataset, out, changes=dict(variant.changes), encoder=self.settings.encoder,
                knowledge=knowledge, epochs=1 if quick else None, max_train_posts=self._limit(QUICK_TRAIN_POSTS),
                max_dev_posts=self._limit(QUICK_DEV_POSTS), resume=resume, log=self.log)

        done = self.run(f"recogniser {variant.name}", out / CONFIG_FILE, args, work, force=True)
        return out if done and training_finished(out) else None

    def predictions(self, variant: Variant, split: str) -> Path | None:
        recognizer = self.recognizer(variant)
        if recognizer is None:
            return None
        knowledge = self.knowledge_file(variant.knowledge)
        out = recognizer / f"{split}.jsonl"
        args = ["predict", "--recognizer", str(recognizer), "--dataset", self.settings.dataset, "--split", split,
                "--output", str(out), "--threads", str(self.settings.threads), "--no-progress",
                *self._quick((), ("--max-posts", str(QUICK_TEST_POSTS)))]
        args += ["--knowledge", str(knowledge)] if knowledge else []
        posts = self.dataset(split).posts[:self._limit(QUICK_TEST_POSTS)]
        return self.run(f"predict {variant.name} {split}", out, args,
                        lambda: steps.predict_step(recognizer, posts, out, knowledge), lines=len(posts))

    def reranker(self) -> Path | None:
        out = self.settings.folder / "reranker"
        model = self.settings.reranker_model
        args = ["train", "reranker", "--dataset", self.settings.dataset, "--preset", "lite", "--output", str(out),
                "--threads", str(self.settings.threads), "--device", "cpu", "--dev-max", "0",
                *self._quick((), ("--max-train", str(QUICK_RERANKER_ENTITIES)))]
        args += ["--model", model] if model else []

        def work() -> None:
            steps.train_reranker_step(self.settings.dataset, out, model=model,
                                      max_train=self._limit(QUICK_RERANKER_ENTITIES), log=self.log)

        return self.run("reranker", out / "reranker.json", args, work) and out

    def _rerank(self, description: str, reranker: Path, predictions: Path, out: Path, k: int,
                gamma: float | None) -> Path | None:
        """`gemner rerank`: every entity (`gamma` None) or those above `gamma`."""
        args = ["rerank", "--model", str(reranker), "--predictions", str(predictions), "--output", str(out),
                *(["--all"] if gamma is None else ["--gamma", str(gamma)]), "--k", str(k),
                "--threads", str(self.settings.threads), "--device", "cpu"]
        return self.run(description, out, args,
                        lambda: steps.rerank_step(reranker, predictions, out, k=k, gamma=gamma, log=self.log),
                        lines=count_lines(predictions))

    def reranked(self, variant: Variant, split: str, k: int | None = None) -> Path | None:
        """Every entity reranked (w/o-SF); the filtered output is derived from it without the model."""
        predictions, reranker = self.predictions(variant, split), self.reranker()
        if predictions is None or reranker is None:
            return None
        k = k or self.settings.k
        return self._rerank(f"rerank-all {variant.name} {split} K={k}", reranker, predictions,
                            predictions.with_name(f"{split}.rerank-all.k{k}.jsonl"), k, None)

    def filtered(self, variant: Variant, split: str, gamma: float | None = None, k: int | None = None) -> Path | None:
        """SF + CR. At the main K it is derived from the rerank-all run (also the w/o-SF row) without the
        model; at other K (the Fig. 6 sweep) only the entities above gamma are reranked."""
        gamma = self.settings.gamma if gamma is None else gamma
        k = k or self.settings.k
        predictions = self.predictions(variant, split)
        if predictions is None:
            return None
        out = predictions.with_name(f"{split}.sf{gamma:g}.k{k}.jsonl")
        if k != self.settings.k:
            reranker = self.reranker()
            return reranker and self._rerank(f"SF + rerank {variant.name} {split} K={k}", reranker, predictions,
                                             out, k, gamma)
        reranked = self.reranked(variant, split, k)
        if reranked is None:
            return None
        args = ["sample-filter", "--predictions", str(predictions), "--reranked", str(reranked),
                "--gamma", str(gamma), "--output", str(out)]
        return self.run(f"sample filter {variant.name} {split} gamma={gamma:g}", out, args,
                        lambda: steps.sample_filter_step(predictions, reranked, out, gamma, self.log),
                        lines=count_lines(predictions))

    def calibration(self, variant: Variant) -> Path | None:
        """Appendix E / Fig. 5 on dev: precision per entropy bin of recogniser and reranker, gamma."""
        predictions, reranked = self.predictions(variant, "dev"), self.reranked(variant, "dev")
        if predictions is None or reranked is None:
            return None
        out = self.settings.folder / "fig5_gamma.json"
        args = ["calibrate-gamma", "--predictions", str(predictions), "--reranked", str(reranked),
                "--dataset", self.settings.dataset, "--plot", str(out.with_suffix(".png")), "--json", str(out),
                "--k", str(self.settings.k)]
        gold = self.dataset("dev").posts
        return self.run("gamma calibration (dev)", out, args,
                        lambda: steps.calibrate_gamma_step(gold, predictions, reranked, out, self.settings.k,
                                                           self.log))

    # ----------------------------------------------------------------- scoring
    def score(self, path: Path | None, split: str = "test") -> ScoreReport | None:
        if path is None:
            return None
        dataset = self.dataset(split)
        predictions = read_predictions(path)
        gold = [p for p in dataset.posts if p.id in predictions] if self.settings.quick else dataset.posts
        return score(gold, predictions, dataset.schema)

    def write_plan(self) -> Path:
        path = self.settings.folder / "plan.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{step.description}\n  -> {step.output}\n  $ gemner {shlex.join(step.command)}\n"
                 for step in self.plan]
        path.write_text("".join(lines))
        return path


def variant_named(variants: Sequence[Variant], name: str) -> Variant | None:
    return next((v for v in variants if v.name == name), None)
