"""A converted copy of GGUF weights, so that only the first start pays for de-quantisation.

transformers reads a GGUF file by de-quantising every tensor in Python (about 25 s for SmolLM2-135M
Q4_1 on a 2-core machine). The first load writes the result as an ordinary model folder
(`model.safetensors` + config + tokenizer) under the user's cache; every later load reads that
folder, which takes a fraction of a second. Only safetensors are written or read, never pickle.

    $GEMNER_CACHE/converted/<model>-<key>/     (default ~/.cache/gemner/converted/...)

`<key>` is a hash of the GGUF file's path, size and modification time and of the transformers
version, so a replaced file or a new transformers gets a fresh copy. A folder is written under a
temporary name and renamed into place when complete; a folder whose manifest does not match its
files (a crash, a full disk, a hand edit) is rebuilt. `GEMNER_CONVERT_GGUF=0` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .paths import cache_dir

SWITCH_ENV = "GEMNER_CONVERT_GGUF"
MANIFEST = "gemner-converted.json"
_UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".py")

logger = logging.getLogger(__name__)

Builder = Callable[[Path], None]  # writes a model folder (safetensors weights, config, tokenizer) into a path


def cache_root() -> Path:
    """`$GEMNER_CACHE/converted`, else `$XDG_CACHE_HOME/gemner/converted`, else `~/.cache/gemner/converted`."""
    return cache_dir("converted")


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def entry_key(gguf: Path) -> str:
    """Changes when the file (path, size, mtime) or the converting library changes."""
    from importlib.metadata import version

    stat = gguf.stat()
    parts = [str(gguf.resolve()), str(stat.st_size), str(stat.st_mtime_ns), version("transformers")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def entry_folder(gguf: Path, root: Path | None = None) -> Path:
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in gguf.stem)[:80]
    return (root or cache_root()) / f"{stem}-{entry_key(gguf)}"


def is_complete(folder: Path) -> bool:
    """The manifest exists, lists the weights, and every listed file has its recorded size; no
    pickle or code file has crept in."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        if not any(name.endswith(".safetensors") for name in files):
            return False
        if any(p.suffix in _UNSAFE_SUFFIXES for p in folder.iterdir()):
            return False
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_manifest(folder: Path, gguf: Path) -> None:
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"source": str(gguf), "files": files}, indent=1))


def _discard(folder: Path) -> None:
    """Move a folder aside first (a rename is atomic), then delete it."""
    if not folder.exists():
        return
    trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
    try:
        folder.rename(trash)
    except OSError:
        trash = folder
    shutil.rmtree(trash, ignore_errors=True)


def converted(gguf: Path, build: Builder, root: Path | None = None) -> Path:
    """The converted folder of `gguf`, built with `build(folder)` when absent or incomplete."""
    final = entry_folder(gguf, root)
    if is_complete(final):
        return final
    _discard(final)  # partial or corrupt
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        build(temp)
        _write_manifest(temp, gguf)
        if not is_complete(temp):
            raise RuntimeError(f"converting {gguf} wrote no safetensors weights (or a file that is not safetensors)")
        try:
            temp.rename(final)
        except OSError:  # another process finished first: use its copy when it is whole
            if not is_complete(final):
                raise
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    logger.info("converted %s into %s", gguf, final)
    return final


def discard(gguf: Path, root: Path | None = None) -> None:
    """Forget the converted copy of `gguf` (it failed to load)."""
    _discard(entry_folder(gguf, root))
