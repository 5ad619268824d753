"""Options shared by the commands that write a predictions file (declared once, used everywhere)."""

from __future__ import annotations

from typing import Annotated

import typer

RetryOpt = Annotated[bool, typer.Option(
    "--retry-errors/--skip-errors",
    help="On resume, redo the posts that ended in an error (default), or keep their error records.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Posts per batch.")]
MaxPostsOpt = Annotated[int | None, typer.Option(min=1, help="Only the first N posts (smoke runs).")]
ThreadsOpt = Annotated[int | None, typer.Option(min=1, help="torch CPU threads.")]
