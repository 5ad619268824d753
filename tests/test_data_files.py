"""Whole-file outputs: all or nothing, gzipped by name."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gemner.data.files import atomic_output, open_text
from gemner.data.issues import DataError


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [target]


def test_gz_names_are_gzipped_text_and_read_back(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "knowledge.jsonl.gz"
    with atomic_output(target) as handle:
        handle.write('{"id": "1", "knowledge": "é"}\n')
    assert gzip.decompress(target.read_bytes()).decode("utf-8") == '{"id": "1", "knowledge": "é"}\n'
    with open_text(target) as handle:
        assert handle.read().startswith('{"id"')


def test_binary_and_folder_targets(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "x.spacy", binary=True) as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "x.spacy").read_bytes() == b"\x00\x01"
    with pytest.raises(DataError, match="is a folder"), atomic_output(tmp_path):
        pass
