"""Options shared by the commands that write a predictions file (declared once, used everywhere)."""

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
