"""`gemner config show`: print a pipeline configuration (a preset or a YAML file) as YAML."""

from __future__ import annotations

from typing import Annotated

import typer

from ..pipeline.preset_names import PRESET_LIST
from .app import app
from .console import err as console
from .errors import friendly_errors

config_app = typer.Typer(help="Pipeline configurations (presets and YAML files).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
@friendly_errors
def show(
    name: Annotated[str, typer.Argument(
        help=f"Preset ({PRESET_LIST}), YAML file, or folder with gemner.yaml.")] = "lite",
    check: Annotated[bool, typer.Option(help="Also say which models are available on this machine.")] = False,
) -> None:
    """Print the configuration with every model name/path and hyperparameter (save it, edit it, pass
    it to `gemner predict --config FILE`)."""
    from ..pipeline.config import load_config, model_availability

    config = load_config(name)
    print(config.to_yaml(), end="")
    if check:
        for role, (model, found) in model_availability(config).items():
            console.print(f"{role}: {model} -> {'available' if found else '[yellow]missing[/]'}", highlight=False)
