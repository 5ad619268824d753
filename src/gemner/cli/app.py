"""The typer applications that command modules register on (kept apart from `main` to avoid cycles)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="gemner",
    help="Fine-grained multimodal named entity recognition and grounding (GEM).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Benchmark data: statistics, conversion, validation.", no_args_is_help=True)
train_app = typer.Typer(help="Train one stage of the method.", no_args_is_help=True)



def _print_version(asked: bool) -> None:
    if asked:
        from .. import __version__
        from .console import out

        out.print(f"gemner {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print gemner's version and exit.")] = False,
             ) -> None:
    """Fine-grained multimodal named entity recognition and grounding (GEM)."""


app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")

# Every command that loads models takes this flag; it is the only way remote code gets allowed.
TrustRemoteCodeOpt = Annotated[bool, typer.Option(
    "--trust-remote-code", help="Let models run Python code shipped with their weights (transformers' "
    "trust_remote_code). Off unless given here: no config or checkpoint file can switch it on.")]
