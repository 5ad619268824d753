"""Shipped folders are found from the package, not the working directory; the variables override them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gemner import paths
from gemner.data import load_dataset


def test_shipped_folders_are_found_whatever_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert (paths.data_dir() / "fmnerg" / "test.txt.gz").is_file()
    assert (paths.knowledge_dir() / "fmnerg-gazetteer.jsonl.gz").is_file()
    assert (paths.models_dir() / "fmnerg-recognizer-lite" / "config.json").is_file()
    assert len(load_dataset("fmnerg", "dev")) > 0


def test_the_variables_override_the_package_folders(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "data" / "gmner").mkdir(parents=True)
    (tmp_path / "models").mkdir()
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "models"))
    assert paths.data_dir() == tmp_path / "data"
    assert paths.knowledge_dir() == tmp_path / "data" / "knowledge"
    assert paths.models_dir() == tmp_path / "models"


def test_a_wrong_variable_is_an_error_that_names_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=paths.DATA_ENV):
        paths.data_dir()
    monkeypatch.setenv(paths.MODELS_ENV, str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=paths.MODELS_ENV):
        paths.models_dir()


def test_without_a_variable_or_a_shipped_folder_the_error_names_the_variable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    monkeypatch.delenv(paths.MODELS_ENV, raising=False)
    monkeypatch.setattr(paths, "package_candidates", lambda name: [tmp_path / name])
    with pytest.raises(FileNotFoundError, match=f"set {paths.DATA_ENV}"):
        paths.data_dir()
    with pytest.raises(FileNotFoundError, match=f"set {paths.MODELS_ENV}"):
        paths.models_dir()


def test_models_prefix_names_a_shipped_model_everywhere_a_model_is_taken(tmp_path: Path, monkeypatch) -> None:
    from gemner.hub import resolve
    from gemner.paths import expand_model_name, models_dir
    from gemner.recognize.model import Recognizer

    shipped = models_dir()
    assert expand_model_name("models:fmnerg-recognizer-lite") == str(shipped / "fmnerg-recognizer-lite")
    assert expand_model_name("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert resolve("models:fmnerg-reranker-lite").source == str(shipped / "fmnerg-reranker-lite")
    model = Recognizer.from_pretrained("models:fmnerg-recognizer-lite")
    assert model.schema.name == "fmnerg"

    monkeypatch.setenv("GEMNER_MODELS", str(tmp_path))
    (tmp_path / "mine").mkdir()
    assert resolve("models:mine").source == str(tmp_path / "mine")
