"""Where the shipped files live: the benchmarks (`data/`), their knowledge files and the models (`models/`).

Each folder is found the same way: its environment variable when set, else inside the installed package
(`gemner/_shipped/data`, `gemner/_shipped/models`: the wheel carries them, see setup.py), else at the root
of a source checkout (`src/gemner` -> `data/`, `models/`).
Nothing depends on the working directory. When no candidate holds the folder, the error names the variable
to set.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

DATA_ENV = "GEMNER_DATA"
MODELS_ENV = "GEMNER_MODELS"
CACHE_ENV = "GEMNER_CACHE"
BENCHMARKS = ("gmner", "gmner-v2", "fmnerg")
_PACKAGE = Path(__file__).resolve().parent
SHIPPED = _PACKAGE / "_shipped"  # where a wheel puts the repository's data/ and models/ (setup.py)


def package_candidates(name: str) -> list[Path]:
    """`name` inside the installed package, then at the root of a src-layout checkout."""
    return [SHIPPED / name, _PACKAGE.parents[1] / name]


def _find(env: str, name: str, holds: Callable[[Path], bool], what: str, explicit: str | Path | None = None) -> Path:
    chosen = explicit or os.environ.get(env)
    if chosen:  # asked for by name: never silently replaced by another folder
        if holds(Path(chosen)):
            return Path(chosen)
        source = "given folder" if explicit else f"${env}"
        raise FileNotFoundError(f"{what} not found in {chosen} (the {source}); set {env} to a folder holding them")
    for candidate in package_candidates(name):
        if holds(candidate):
            return candidate
    tried = ", ".join(str(c) for c in package_candidates(name))
    raise FileNotFoundError(f"{what} not found (looked in {tried}): set {env} to the folder holding them")


def _holds_benchmarks(folder: Path) -> bool:
    return (folder / "gmner").is_dir()


def data_dir(explicit: str | Path | None = None) -> Path:
    """The folder of the shipped benchmarks (`gmner/`, `gmner-v2/`, `fmnerg/`, `knowledge/`): `explicit`,
    else $GEMNER_DATA, else the package's."""
    return _find(DATA_ENV, "data", _holds_benchmarks, f"benchmark data ({', '.join(BENCHMARKS)})", explicit)


def knowledge_dir() -> Path:
    """The shipped knowledge files (gazetteer hints, the offline LLM's explanations)."""
    return data_dir() / "knowledge"


def models_dir() -> Path:
    """The folder of the shipped models (`models:NAME` in a pipeline YAML): $GEMNER_MODELS, else the package's."""
    return _find(MODELS_ENV, "models", Path.is_dir, "shipped models")


SHIPPED_MODEL_PREFIX = "models:"


def expand_model_name(name: str) -> str:
    """`models:NAME` -> the shipped model's folder; any other name or path unchanged. Every place that takes
    a model (pipeline YAML, `--model`, `--recognizer`, the API) accepts the same spelling."""
    if name.startswith(SHIPPED_MODEL_PREFIX):
        return str(models_dir() / name.removeprefix(SHIPPED_MODEL_PREFIX))
    return name


def cache_dir(name: str) -> Path:
    """`name` under the user's gemner cache: `$GEMNER_CACHE/name`, else `$XDG_CACHE_HOME/gemner/name`, else
    `~/.cache/gemner/name` (converted GGUF weights, assembled model archives)."""
    base = os.environ.get(CACHE_ENV)
    if base:
        return Path(base).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "gemner" / name
