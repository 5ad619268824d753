"""Build hook: the shipped `data/` (benchmark annotations, knowledge files) and `models/` (the lite models) of
the repository root go into the wheel as `gemner/_shipped/data` and `gemner/_shipped/models`, where
`gemner.paths` finds them in an installed package. Everything else is declared in pyproject.toml.

The folders stay at the repository root so that a checkout, the tests and the docs use the same paths;
an editable install (`pip install -e .`) copies nothing and finds them there.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("data", "models")  # repository folders -> gemner/_shipped/<name> in the wheel


class BuildWithShippedFiles(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        root = Path(__file__).resolve().parent
        for name in SHIPPED:
            if not (root / name).is_dir():
                raise FileNotFoundError(f"{root / name} is missing: the wheel must ship it")
            self.copy_tree(str(root / name), str(Path(self.build_lib) / "gemner" / "_shipped" / name))


setup(cmdclass={"build_py": BuildWithShippedFiles})
