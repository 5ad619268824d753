"""Scores, tables and targets of `gemner reproduce --config paper-tiny | paper` (`reproduce_gem`).

Every row is the test split predicted by the whole pipeline (`rows/<row>.jsonl`) and scored on fine labels
(coarse too for FMNERG-style data). Three targets say whether the run shows what the paper claims:
GEM's MNERG above every ablation (Fig. 3); on the look-alike entities, whose fine type only the image
decides, the image-conditioned reranker at least 20 points above the text-only recogniser; and grounding
that localises: GEM's EEG at least 30 points above the centre-box baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.synthetic import LOOKALIKE_NAMES
from ..data.userio import read_predictions
from ..evaluation import ScoreReport, score
from .reproduce_gem import PIPELINE_DIR, ROW_NAMES, TEXT_ONLY, GemRun, GemSettings, Log, plan_steps, run_gem_steps
from .tables import PAPER_TABLE_1, Cell, TableData

LOOKALIKES = set(LOOKALIKE_NAMES)
LOOKALIKE_GAIN, EEG_GAIN = 20.0, 30.0  # points


@dataclass
class Target:
    name: str
    value: float | None  # the measured margin in points; None: not measured
    needed: float
    ceiling: float | None = None  # the largest margin any system could reach on this benchmark (None: 100 or unknown)

    @property
    def met(self) -> bool:
        return self.value is not None and self.value >= self.needed

    def to_json(self) -> dict[str, Any]:
        return {"target": self.name, "margin": self.value, "needed": self.needed, "met": self.met,
                "reachable": self.ceiling}


@dataclass
class GemResults:
    settings: GemSettings
    run: GemRun
    reports: dict[str, ScoreReport | None]
    lookalike: dict[str, float | None]  # row -> % of gold look-alike entities with span and fine type right
    targets: list[Target] = field(default_factory=list)
    json_file: Path | None = None

    @property
    def pipeline(self) -> Path | None:
        return self.run.output("pipeline folder")

    def to_json(self) -> dict[str, Any]:
        def figures(coarse: bool) -> dict[str, dict[str, float] | None]:
            return {row: _levels(report, coarse) for row, report in self.reports.items() if row != TEXT_ONLY}

        return {"config": self.settings.config, "dataset": self.settings.name, "quick": self.settings.quick,
                "rows": figures(False), "coarse": figures(True), "lookalike_accuracy": self.lookalike,
                "targets": [t.to_json() for t in self.targets], "cpu_seconds": self.run.cpu_seconds,
                "failed": self.run.failed, "pipeline": str(self.pipeline) if self.pipeline else None}

    def tables(self) -> list[TableData]:
        return [table_1(self), ablation_table(self), targets_table(self.targets)]


def _levels(report: ScoreReport | None, coarse: bool) -> dict[str, float] | None:
    if report is None or (coarse and report.coarse is None):
        return None
    level = report.coarse if coarse else report.main
    return {"mner": round(level.mner.f1, 2), "eeg": round(level.eeg.f1, 2), "mnerg": round(level.mnerg.f1, 2)}


def run_gem_reproduction(settings: GemSettings, log: Log = print, json_file: Path | None = None) -> GemResults:
    """Run the steps not yet done, score every row, check the targets; writes `results.json` in the run
    folder (and `json_file` when given)."""
    run = run_gem_steps(settings, log)
    reports: dict[str, ScoreReport | None] = {}
    lookalike: dict[str, float | None] = {}
    test = _gold(settings)
    for row in (*ROW_NAMES, TEXT_ONLY):
        path = run.output(f"row {row}")
        predictions = read_predictions(path) if path else None
        reports[row] = score(test.posts, predictions, test.schema) if predictions is not None else None
        lookalike[row] = lookalike_accuracy(test.posts, predictions) if predictions is not None else None
    results = GemResults(settings, run, reports, lookalike)
    results.targets = targets(reports, lookalike)
    (settings.folder / "results.json").write_text(json.dumps(results.to_json(), indent=2))
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(results.to_json(), indent=2))
        results.json_file = json_file
    return results


def _gold(settings: GemSettings):
    from ..data.folders import load_split

    test = load_split(settings.dataset, "test", images_dir=settings.images)
    test.posts = test.posts[:settings.profile().limits.get("test")]
    return test


def lookalike_accuracy(gold_posts, predictions) -> float | None:
    """% of the gold look-alike entities (a synthetic benchmark's names whose fine type only the image
    decides) predicted with their span and fine type; None when the benchmark has none."""
    wanted = [(post.id, e.start, e.end, e.type) for post in gold_posts for e in post.entities
              if e.text in LOOKALIKES]
    if not wanted:
        return None
    found = {(post_id, e.start, e.end, e.type) for post_id, entities in predictions.items() for e in entities}
    return round(100 * sum(item in found for item in wanted) / len(wanted), 2)


def targets(reports: dict[str, ScoreReport | None], lookalike: dict[str, float | None]) -> list[Target]:
    gem = reports.get("GEM")
    others = [r for name, r in reports.items() if name not in ("GEM", TEXT_ONLY)]
    margin = gem.mnerg.f1 - max(r.mnerg.f1 for r in others) if gem and others and all(others) else None
    reranked, text_only = lookalike.get("w/o-KA"), lookalike.get(TEXT_ONLY)
    centre = reports.get("centre-box")
    return [
        Target("GEM's MNERG above every ablation (Fig. 3)", _round(margin), 1e-9),
        Target("look-alikes: image-conditioned reranker over the text-only recogniser",
               _round(reranked - text_only) if reranked is not None and text_only is not None else None,
               LOOKALIKE_GAIN),
        # a perfect system's EEG is 100: the margin can be no larger than what centre-box leaves
        Target("EEG: GEM over the centre-box baseline",
               _round(gem.eeg.f1 - centre.eeg.f1) if gem and centre else None, EEG_GAIN,
               _round(100.0 - centre.eeg.f1) if centre else None),
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _cells(report: ScoreReport | None, coarse: bool = False) -> list[Cell]:
    levels = _levels(report, coarse)
    return [levels[k] for k in ("mner", "eeg", "mnerg")] if levels else ["not run"] * 3


def table_1(results: GemResults) -> TableData:
    hierarchical = any(r is not None and r.coarse is not None for r in results.reports.values())
    columns = ["MNER", "EEG", "MNERG"] + (["coarse MNER", "coarse EEG", "coarse MNERG"] if hierarchical else [])
    table = TableData(f"Table 1: {results.settings.name} test, GEM ({results.settings.config}), F1", columns)
    for name, row in (("GEM (ours)", "GEM"), ("recogniser + grounding, no rerank (w/o-CR)", "w/o-CR")):
        report = results.reports.get(row)
        table.rows.append((name, _cells(report) + (_cells(report, True) if hierarchical else [])))
    for name, (mnerg, mner, eeg) in PAPER_TABLE_1.get(results.settings.name, {}).items():
        table.rows.append((name, [mner, eeg, mnerg] + (["-"] * 3 if hierarchical else [])))
    return table


def ablation_table(results: GemResults) -> TableData:
    table = TableData(f"Fig. 3 ablations: {results.settings.name} test, fine labels, F1",
                      ["MNER", "EEG", "MNERG", "look-alike acc."])
    for row in (*ROW_NAMES, TEXT_ONLY):
        lookalike = results.lookalike.get(row)
        table.rows.append((row, [*_cells(results.reports.get(row)), "-" if lookalike is None else lookalike]))
    return table


def targets_table(found: list[Target]) -> TableData:
    table = TableData("Targets", ["margin (points)", "needed", "reachable", "result"])
    for target in found:
        verdict = "met" if target.met else "not met" if target.value is not None else "not measured"
        table.rows.append((target.name, [target.value if target.value is not None else "-",
                                         f">= {target.needed:g}" if target.needed >= 1 else "> 0",
                                         f"<= {target.ceiling:g}" if target.ceiling is not None else "-", verdict]))
    return table


def gem_plan(settings: GemSettings) -> list[str]:
    """`--dry-run`: each step (output, equivalent command) and each model with its size, running nothing."""
    from .reproduce_gem import describe_step

    lines = [describe_step(step) for step in plan_steps(settings, log=lambda _m: None)]
    lines.append(f"pipeline folder: {settings.folder / PIPELINE_DIR}\n")
    lines += [f"model {line}\n" for line in model_lines(settings.config)]
    return lines


def model_lines(config: str) -> list[str]:
    """One line per model of `config`: role, name, parameters, memory for inference and training
    (`pipeline.footprint`, counted on the meta device: nothing is loaded or downloaded)."""
    from .footprint import model_footprints

    return [f"{f.role}: {f.name}, {f.params / 1e6:.1f} M parameters, inference {_gib(f.inference_bytes)}, "
            f"training {_gib(f.training_bytes) if f.training_bytes else 'not trained'}"
            + (f" ({f.note})" if f.note else "") for f in model_footprints(config)]


def _gib(size: float) -> str:
    return f"{size / 2 ** 30:.2f} GiB" if size >= 2 ** 28 else f"{size / 2 ** 20:.1f} MiB"
