"""The paper's tables and figures from a `Reproduction`: Table 1 (our rows), Table 2, Fig. 3, Fig. 6, and
the recogniser ablations; each cell a measured number or what it needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from ..evaluation import ScoreReport
from .charts import bar_chart
from .reproduce import NEEDS_IMAGES, RERANKED_VARIANTS, Reproduction, Settings, variant_named

# Paper Table 1, GEM (BERT) and GEM (RoBERTa): MNERG / MNER / EEG.
PAPER_TABLE_1 = {
    "gmner": {"GEM (BERT), paper": (59.83, 83.15, 63.16), "GEM (RoBERTa), paper": (61.54, 84.81, 64.49)},
    "fmnerg": {"GEM (BERT), paper": (50.54, 68.09, 63.59), "GEM (RoBERTa), paper": (52.48, 70.80, 65.52)},
}
Cell = float | str | None


@dataclass
class TableData:
    title: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)

    def render(self) -> Table:
        table = Table(title=self.title)
        table.add_column("")
        for column in self.columns:
            table.add_column(column, justify="right")
        for name, cells in self.rows:
            table.add_row(name, *(_fmt(c) for c in cells))
        return table

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": [[n, *c] for n, c in self.rows]}


def _fmt(cell: Cell) -> str:
    if cell is None:
        return "-"
    return f"{cell:.2f}" if isinstance(cell, float) else cell


def _prf(report: ScoreReport | None, coarse: bool = False) -> list[Cell]:
    if report is None:
        return ["not run"] * 3
    level = report.coarse if coarse and report.coarse is not None else report.main
    return [level.mner.precision, level.mner.recall, level.mner.f1]


@dataclass
class Results:
    tables: list[TableData]
    figures: list[Path]
    results_file: Path | None = None  # results.json, once written
    plan_file: Path | None = None  # plan.txt: the equivalent `gemner` command of every step

    def to_json(self) -> dict[str, Any]:
        return {"tables": [t.to_json() for t in self.tables], "figures": [str(f) for f in self.figures]}


def run_reproduction(settings: Settings, log: Callable[[str], None] = print) -> Results:
    """Every table and figure, running the steps not yet done; writes `results.json` and `plan.txt`."""
    reproduction = Reproduction(settings, log=log)
    results = build_results(reproduction)
    results.results_file, results.plan_file = write_results(reproduction, results), reproduction.write_plan()
    return results


def build_results(rep: Reproduction) -> Results:
    dataset = rep.settings.dataset
    variants = rep.variants()
    hierarchical = dataset == "fmnerg"
    get = {name: variant_named(variants, name)
           for name in ("gem", "ka-gazetteer", "ka-llm", "wo-mgp", "wo-mga", "softmax")}
    alone = {n: rep.score(rep.predictions(v, "test")) for n, v in get.items() if v is not None}
    if rep.settings.recognizers_only:
        for variant in variants:
            rep.predictions(variant, "dev")
        return Results([recogniser_table(alone, hierarchical)], [])
    with_cr = {n: rep.score(rep.filtered(v, "test")) for n, v in get.items()
               if v is not None and n in RERANKED_VARIANTS}
    rerank_all = rep.score(rep.reranked(get["gem"], "test")) if get["gem"] else None
    tables = [table_1(dataset, alone.get("gem"), with_cr.get("gem"))]
    if hierarchical:
        tables.append(table_2(alone, with_cr))
    tables.append(recogniser_table(alone, hierarchical))
    ablation = {"GEM": with_cr.get("gem"), "w/o-MGP": with_cr.get("wo-mgp"),
                "w/o-MGA": with_cr.get("wo-mga"), "w/o-SF": rerank_all, "w/o-CR": alone.get("gem")}
    if not hierarchical:
        ablation.pop("w/o-MGP")
        ablation.pop("w/o-MGA")
    tables.append(TableData(f"Fig. 3 ablation: {dataset} test MNER F1 (gamma {rep.settings.gamma:g}, "
                            f"K {rep.settings.k})", ["MNER F1"],
                            [(name, [r.mner.f1 if r else "not run"]) for name, r in ablation.items()]))
    figures = [bar_chart(rep.settings.folder / "fig3_ablation.png", list(ablation),
                         [r.mner.f1 if r else None for r in ablation.values()],
                         title=f"GEM-lite ablations, {dataset} test", ylabel="MNER F1")]
    if hierarchical and get["gem"] is not None:
        sweep = {k: rep.score(rep.filtered(get["gem"], "test", k=k)) for k in (3, 5, 7)}
        tables.append(TableData("Fig. 6: candidates K (GEM, SF + CR), test fine MNER", ["P", "R", "F1"],
                                [(f"K = {k}", _prf(r)) for k, r in sweep.items()]))
    if get["gem"] is not None:
        calibration = rep.calibration(get["gem"])
        if calibration is not None:
            data = json.loads(calibration.read_text())
            figures.append(calibration.with_suffix(".png"))
            rows: list[tuple[str, list[Cell]]] = [
                ("crossing of the curves", [data.get("crossing_gamma")]),
                ("best combined dev precision", [data.get("best_gamma")]),
                ("paper (used above)", [rep.settings.gamma])]
            chosen = data.get("chosen_gamma")
            if chosen is not None:  # the calibrated filter on test, derived from the rerank-all run
                report = rep.score(rep.filtered(get["gem"], "test", gamma=round(chosen, 2)))
                rows.append((f"test fine MNER F1, SF at gamma {chosen:.2f} + rerank",
                             [report.mner.f1 if report else "not run"]))
            tables.append(TableData("Fig. 5 / Appendix E: gamma from dev precision curves", ["gamma"], rows))
    return Results(tables, figures)


def table_1(dataset: str, alone: ScoreReport | None, with_cr: ScoreReport | None) -> TableData:
    """Our rows: the recogniser alone and with SF + rerank, each grounded (needs images) and with every
    box None (what this machine can score: MNERG then counts only the ungroundable entities)."""
    table = TableData(f"Table 1 (our rows): {dataset} test", ["MNERG", "MNER", "EEG"])
    for name, report in (("GEM-lite (MiniLM) recogniser", alone), ("GEM-lite (MiniLM) + SF + rerank", with_cr)):
        if report is None:
            table.rows.append((name, ["not run"] * 3))
            continue
        table.rows.append((f"{name}, grounded", [NEEDS_IMAGES, report.mner.f1, NEEDS_IMAGES]))
        table.rows.append((f"{name}, every box None", [report.mnerg.f1, report.mner.f1, report.eeg.f1]))
    for name, values in PAPER_TABLE_1[dataset if dataset in PAPER_TABLE_1 else "gmner"].items():
        table.rows.append((name, list(values)))
    return table


def table_2(alone: dict[str, ScoreReport | None], with_cr: dict[str, ScoreReport | None]) -> TableData:
    table = TableData("Table 2: FMNERG test, textual entities (coarse | fine)",
                      ["coarse P", "coarse R", "coarse F1", "fine P", "fine R", "fine F1"])
    rows = {"Base model (w/o-MGP)": alone.get("wo-mgp"), "Multi": alone.get("gem"),
            "Rerank": with_cr.get("wo-mgp"), "Multi+Rerank": with_cr.get("gem")}
    for name, report in rows.items():
        table.rows.append((name, _prf(report, coarse=True) + _prf(report)))
    for name in ("GEM (visual entities)", "GEM-wo (visual entities)"):
        table.rows.append((name, [NEEDS_IMAGES] * 6))
    return table


def recogniser_table(alone: dict[str, ScoreReport | None], hierarchical: bool) -> TableData:
    columns = ["P", "R", "F1"] + (["coarse F1"] if hierarchical else [])
    table = TableData("Recogniser alone: test MNER" + (" (fine labels)" if hierarchical else ""), columns)
    for name, report in alone.items():
        cells = _prf(report)
        if hierarchical:
            cells.append(report.coarse.mner.f1 if report and report.coarse else None)
        table.rows.append((name, cells))
    return table


def write_results(rep: Reproduction, results: Results) -> Path:
    path = rep.settings.folder / "results.json"
    path.write_text(json.dumps(results.to_json(), indent=2))
    return path
