"""Render a `ScoreReport` as rich tables: MNER, EEG, MNERG and untyped spans per label granularity, the
visual entities, and optionally each type."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from .scorer import PRF, LevelScores, ScoreReport


def _prf_row(name: str, prf: PRF) -> list[str]:
    return [name, f"{prf.precision:.2f}", f"{prf.recall:.2f}", f"{prf.f1:.2f}",
            str(prf.tp), str(prf.n_pred), str(prf.n_gold)]


def _prf_table(title: str) -> Table:
    table = Table(title=title)
    table.add_column("")
    for column in ("P", "R", "F1", "TP", "#pred", "#gold"):
        table.add_column(column, justify="right")
    return table


def level_table(title: str, level: LevelScores) -> Table:
    table = _prf_table(title)
    for name, prf in (("MNER", level.mner), ("EEG", level.eeg), ("MNERG", level.mnerg),
                      ("span (untyped)", level.span)):
        table.add_row(*_prf_row(name, prf))
    return table


def per_type_table(title: str, level: LevelScores) -> Table:
    table = Table(title=title)
    table.add_column("type")
    for column in ("MNER P", "MNER R", "MNER F1", "MNERG F1", "#gold"):
        table.add_column(column, justify="right")
    for label, tasks in sorted(level.per_type.items(), key=lambda kv: -kv[1]["mner"].n_gold):
        mner, mnerg = tasks["mner"], tasks["mnerg"]
        table.add_row(label, f"{mner.precision:.2f}", f"{mner.recall:.2f}", f"{mner.f1:.2f}",
                      f"{mnerg.f1:.2f}", str(mner.n_gold))
    return table


def render(report: ScoreReport, per_type: bool = False) -> Group:
    main_title = "fine labels (main)" if report.coarse is not None else "scores"
    parts = [level_table(main_title, report.main)]
    if report.coarse is not None:
        parts.append(level_table("coarse labels", report.coarse))
    grounding = _prf_table("visual entities (paper Table 2)")
    grounding.add_row(*_prf_row("all groundable", report.grounding["visual"]))
    grounding.add_row(*_prf_row("fine (< 1/50 image)", report.grounding["fine_visual"]))
    parts.append(grounding)
    if per_type:
        parts.append(per_type_table("per type", report.main))
        if report.coarse is not None:
            parts.append(per_type_table("per coarse type", report.coarse))
    return Group(*parts)
