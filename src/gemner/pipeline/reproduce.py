"""`gemner reproduce`: train and evaluate what this machine can, then print the paper's tables.

The reproduction is a plan of steps, each one `gemner` command that writes one file or folder under
`runs/reproduce/<dataset>/`. A step whose output exists is skipped, so an interrupted reproduction
continues where it stopped and finished runs are reused; every table cell can be traced to the
command that made it (`plan.txt`). Cells this machine cannot compute (no images, no vision weights)
say what they need instead of a number.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..data import Dataset, load_dataset
from ..data.userio import read_predictions
from ..evaluation import ScoreReport, score

NEEDS_IMAGES = "needs images*"
NEEDS_IMAGES_NOTE = ("* needs the tweet images (IJCAI2019_data.zip, see README) and BLIP ITM weights: "
                     "gemner predict --config paper --dataset fmnerg --images DIR, then gemner evaluate")


@dataclass(frozen=True)
class Variant:
    name: str
    role: str
    train_flags: tuple[str, ...] = ()
    knowledge: str = "none"  # "none"; "gazetteer": hints from train annotations; "llm": the offline LLM's


# GEM-lite ships without knowledge (the lite preset): on dev, neither knowledge source beat it (README).
FMNERG_VARIANTS = (
    Variant("gem", "GEM-lite recogniser: MGP + MGA, no knowledge (as the lite preset ships)"),
    Variant("ka-gazetteer", "+ KA: gazetteer hints from the train annotations (our deviation)", knowledge="gazetteer"),
    Variant("ka-llm", "+ KA: the offline LLM's explanations (paper KA)", knowledge="llm"),
    Variant("wo-mgp", "w/o-MGP: fine path alone (the 'base model' of Table 2)", ("--no-mgp",)),
    Variant("wo-mga", "w/o-MGA: both paths, no M", ("--no-mga",)),
    Variant("softmax", "per-word softmax head, fine path alone", ("--head", "softmax", "--no-mgp")),
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
    gamma: float = 0.2
    k: int = 5
    threads: int = 1
    recognizers_only: bool = False  # train and predict the recogniser variants, nothing after them
    report_only: bool = False  # run nothing: tables from the finished steps, the rest "not run"
    knowledge_dir: Path = Path("data/knowledge")

    @property
    def folder(self) -> Path:
        return self.runs / self.dataset


TRAINER_STATE = "trainer_state.json"


def count_lines(path: Path) -> int:
    """Complete lines of a file (a line torn by a crash does not count)."""
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def training_finished(folder: Path) -> bool:
    """A recogniser run that went through all its epochs (its best checkpoint exists from the first
    epoch on, so `config.json` alone does not say the run is over)."""
    if not (folder / "config.json").is_file():
        return False
    state = folder / "last" / TRAINER_STATE
    if not state.is_file():  # a checkpoint without its resumable state: taken as final
        return True
    epochs = json.loads((folder / "config.json").read_text())["recognizer"]["epochs"]
    progress = json.loads(state.read_text())
    return progress["epoch"] >= epochs and progress.get("batch", 0) == 0


@dataclass
class Step:
    description: str
    output: Path
    command: list[str]


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
    def run(self, description: str, output: Path, *args: str, lines: int | None = None, force: bool = False
            ) -> Path | None:
        """Run `gemner ARGS` unless `output` is complete (exists and, for a JSONL written post by post,
        has `lines` lines: a partial file is finished by rerunning its resumable command); None when
        the command failed (reported)."""
        command = [sys.executable, "-m", "gemner", *args]
        self.plan.append(Step(description, output, command))
        if not force and output.exists() and (lines is None or count_lines(output) >= lines):
            return output
        if self.settings.report_only:
            return None
        self.log(f"[{description}] gemner {shlex.join(args)}")
        env = {**os.environ, "OMP_NUM_THREADS": str(self.settings.threads)}
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not output.exists():
            tail = (done.stderr or "").strip().splitlines()[-3:]
            self.log(f"  failed ({done.returncode}): {' | '.join(tail)}")
            return None
        return output

    def _quick(self, full: tuple[str, ...], quick: tuple[str, ...]) -> tuple[str, ...]:
        return quick if self.settings.quick else full

    # ----------------------------------------------------------------- the stages
    def knowledge_file(self, kind: str) -> Path | None:
        if kind == "none":
            return None
        name = f"{self.settings.dataset}-gazetteer.jsonl.gz" if kind == "gazetteer" else "fmnerg-smollm2-135m.jsonl.gz"
        path = self.settings.knowledge_dir / name
        return path if path.is_file() else None

    def variants(self) -> list[Variant]:
        pool = FMNERG_VARIANTS if self.dataset("dev").schema.hierarchical else GMNER_VARIANTS
        chosen = [v for v in pool if self.settings.variants is None or v.name in self.settings.variants]
        return [v for v in chosen if v.knowledge != "llm" or self.knowledge_file("llm") is not None]

    def recognizer(self, variant: Variant) -> Path | None:
        out = self.settings.folder / variant.name
        knowledge = self.knowledge_file(variant.knowledge)
        args = ["train", "recognizer", "--dataset", self.settings.dataset, "--preset", "lite", "--output", str(out),
                "--threads", str(self.settings.threads), "--no-progress", *variant.train_flags]
        args += ["--knowledge", str(knowledge)] if knowledge else []
        args += ["--encoder", self.settings.encoder] if self.settings.encoder else []
        args += list(self._quick((), ("--max-train-posts", "300", "--epochs", "1", "--max-dev-posts", "100")))
        if training_finished(out):
            self.plan.append(Step(f"recogniser {variant.name}", out, [sys.executable, "-m", "gemner", *args]))
            return out
        args += ["--resume"] if (out / "last" / TRAINER_STATE).is_file() else []
        done = self.run(f"recogniser {variant.name}", out / "config.json", *args, force=True)
        return out if done and training_finished(out) else None

    def predictions(self, variant: Variant, split: str) -> Path | None:
        recognizer = self.recognizer(variant)
        if recognizer is None:
            return None
        knowledge = self.knowledge_file(variant.knowledge)
        args = ["predict", "--recognizer", str(recognizer), "--dataset", self.settings.dataset, "--split", split,
                "--output", str(recognizer / f"{split}.jsonl"), "--threads", str(self.settings.threads),
                "--no-progress", *self._quick((), ("--max-posts", "100"))]
        args += ["--knowledge", str(knowledge)] if knowledge else []
        posts = len(self.dataset(split))
        return self.run(f"predict {variant.name} {split}", recognizer / f"{split}.jsonl", *args,
                        lines=min(posts, 100) if self.settings.quick else posts)

    def reranker(self) -> Path | None:
        out = self.settings.folder / "reranker"
        args = ["train", "reranker", "--dataset", self.settings.dataset, "--preset", "lite", "--output", str(out),
                "--threads", str(self.settings.threads), "--device", "cpu",
                *self._quick((), ("--max-train", "24", "--dev-max", "0"))]
        args += ["--model", self.settings.reranker_model] if self.settings.reranker_model else []
        return self.run("reranker", out / "reranker.json", *args) and out

    def reranked(self, variant: Variant, split: str, k: int | None = None) -> Path | None:
        """Every entity reranked (w/o-SF); the filtered output is derived from it without the model."""
        predictions, reranker = self.predictions(variant, split), self.reranker()
        if predictions is None or reranker is None:
            return None
        k = k or self.settings.k
        out = predictions.with_name(f"{split}.rerank-all.k{k}.jsonl")
        return self.run(f"rerank-all {variant.name} {split} K={k}", out, "rerank", "--model", str(reranker),
                        "--predictions", str(predictions), "--output", str(out), "--all", "--k", str(k),
                        "--threads", str(self.settings.threads), "--device", "cpu", lines=count_lines(predictions))

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
            return reranker and self.run(
                f"SF + rerank {variant.name} {split} K={k}", out, "rerank", "--model", str(reranker), "--predictions",
                str(predictions), "--output", str(out), "--gamma", str(gamma), "--k", str(k),
                "--threads", str(self.settings.threads), "--device", "cpu", lines=count_lines(predictions))
        reranked = self.reranked(variant, split, k)
        return reranked and self.run(f"sample filter {variant.name} {split} gamma={gamma:g}", out, "sample-filter",
                                     "--predictions", str(predictions), "--reranked", str(reranked),
                                     "--gamma", str(gamma), "--output", str(out))

    def calibration(self, variant: Variant) -> Path | None:
        """Appendix E / Fig. 5 on dev: precision per entropy bin of recogniser and reranker, gamma."""
        predictions, reranked = self.predictions(variant, "dev"), self.reranked(variant, "dev")
        if predictions is None or reranked is None:
            return None
        out = self.settings.folder / "fig5_gamma.json"
        return self.run("gamma calibration (dev)", out, "calibrate-gamma", "--predictions", str(predictions),
                        "--reranked", str(reranked), "--dataset", self.settings.dataset,
                        "--plot", str(out.with_suffix(".png")), "--json", str(out), "--k", str(self.settings.k))

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
        lines = [f"{step.description}\n  -> {step.output}\n  $ gemner {shlex.join(step.command[3:])}\n"
                 for step in self.plan]
        path.write_text("".join(lines))
        return path


def variant_named(variants: Sequence[Variant], name: str) -> Variant | None:
    return next((v for v in variants if v.name == name), None)
