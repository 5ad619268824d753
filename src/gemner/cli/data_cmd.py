"""`gemner data ...`: statistics, conversion of the upstream layout, validation, a synthetic benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .app import data_app
from .console import out as console
from .console import warnings
from .errors import friendly_errors

DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help="gmner | gmner-v2 | fmnerg, or an upstream "
                                         "folder (txt/, xml/, images/, as `data synthetic` writes)")]


@data_app.command("stats")
@friendly_errors
def stats(
    dataset: DatasetOpt = "gmner",
    types: Annotated[bool, typer.Option(help="Also print entity counts per type.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the numbers as JSON here.")] = None,
) -> None:
    """Tweets, entities, groundable entities and boxes per split (the papers' Table 4 conventions)."""
    from ..data import SPLITS
    from ..data.folders import load_split
    from ..data.stats import split_stats

    numbers = {split: split_stats(load_split(dataset, split).posts) for split in SPLITS}
    table = Table(title=f"{dataset}: statistics")
    table.add_column("split")
    for column in ("tweets", "entities", "groundable", "boxes"):
        table.add_column(column, justify="right")
    for split, st in numbers.items():
        table.add_row(split, str(st.tweets), str(st.entities), str(st.groundable), str(st.boxes))
    console.print(table)
    if types:
        type_table = Table(title="entities per type")
        type_table.add_column("type")
        for split in SPLITS:
            type_table.add_column(split, justify="right")
        for label in numbers["train"].types:
            type_table.add_row(label, *(str(numbers[s].types.get(label, 0)) for s in SPLITS))
        console.print(type_table)
    if json_out is not None:
        json_out.write_text(json.dumps({s: st.to_dict() for s, st in numbers.items()}, indent=2))


@data_app.command("convert")
@friendly_errors
def convert(
    txt: Annotated[Path, typer.Option(help="Folder with {train,dev,test}.txt (CoNLL).")],
    out: Annotated[Path, typer.Option(help="Output folder (compact layout).")],
    xml: Annotated[Path | None, typer.Option(help="Pascal-VOC xml folder.")] = None,
) -> None:
    """Convert the upstream layout (txt folder + xml folder) to the shipped compact layout."""
    from ..data.convert import convert_upstream

    log = convert_upstream(txt, out, xml, strict=False)
    warnings(log.issues, shown=len(log.issues))  # the point of the command: every problem
    console.print(f"wrote {out} ({log.summary()})")


@data_app.command("validate")
@friendly_errors
def validate(
    txt: Annotated[Path, typer.Argument(help="A CoNLL txt file (GMNER or FMNERG columns).")],
    schema: Annotated[str, typer.Option(help="gmner | fmnerg")] = "gmner",
    xml: Annotated[Path | None, typer.Option(help="Pascal-VOC xml folder or boxes JSONL.")] = None,
    strict: Annotated[bool, typer.Option(help="Stop at the first problem.")] = False,
) -> None:
    """Read an annotation file and list every problem with its file and line (exit 1 if any)."""
    from ..data import SCHEMAS, DataError, load_conll_split

    if schema not in SCHEMAS:
        raise DataError(f"unknown schema {schema!r}; choose one of {', '.join(SCHEMAS)}")
    dataset = load_conll_split(txt, SCHEMAS[schema], boxes=xml, strict=strict)
    warnings(dataset.issues, shown=len(dataset.issues))
    n_entities = sum(len(p.entities) for p in dataset.posts)
    console.print(f"{len(dataset.posts)} posts, {n_entities} entities kept; {len(dataset.issues)} issues")
    if dataset.issues:
        raise typer.Exit(1)


@data_app.command("synthetic")
@friendly_errors
def synthetic(
    out: Annotated[Path, typer.Option(help="Folder for txt/, xml/, images/ and knowledge.jsonl.")],
    posts: Annotated[int, typer.Option(min=3, help="Posts in all, split 70/15/15 into train/dev/test.")] = 300,
    seed: Annotated[int, typer.Option(help="The same seed writes the same files.")] = 0,
) -> None:
    """Write a synthetic multimodal benchmark in the upstream FMNERG layout (docs/synthetic.md)."""
    from ..data.synthetic import write_synthetic_benchmark

    report = write_synthetic_benchmark(out, posts=posts, seed=seed)
    splits = ", ".join(f"{split} {n}" for split, n in report.posts.items())
    console.print(f"wrote {out}: {splits} posts; {report.entities} entities, {report.drawn} drawn "
                  f"({report.small} under 1/50 of the image), {report.lookalikes} decided by the image only",
                  highlight=False)
