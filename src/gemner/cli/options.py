"""Options shared by several commands: those that write a predictions file, the trainers (declared once)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

RetryOpt = Annotated[bool, typer.Option(
    "--retry-errors/--skip-errors",
    help="On resume, redo the posts that ended in an error (default), or keep their error records.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Posts per batch.")]
MaxPostsOpt = Annotated[int | None, typer.Option(min=1, help="Only the first N posts (smoke runs).")]
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")]


class ResultFormat(str, Enum):
    auto = "auto"
    json = "json"
    table = "table"


FormatOpt = Annotated[ResultFormat, typer.Option(
    "--format",
    help="Results on stdout as JSON lines or a table; auto: a table at a terminal, JSON otherwise (pipes, files).")]

ProcessesOpt = Annotated[int, typer.Option(
    min=1, help="Data-parallel training processes on this machine (gloo on CPU, one GPU each with cuda); each "
    "takes a share of every batch, the gradients are averaged (docs/scale.md).")]
AccumulateOpt = Annotated[int | None, typer.Option(
    min=1, help="Gradient accumulation: each process's share of a batch runs as N micro-batches; the effective "
    "batch stays --batch-size (default: 1).")]
