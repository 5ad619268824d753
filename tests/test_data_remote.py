"""Files by URI (`gemner.data.remote`): posts read from an fsspec in-memory filesystem and from `file://`,
a mirrored output folder, and URIs carrying credentials refused without echoing them."""

from __future__ import annotations

import gzip
import json
import uuid

import pytest

fsspec = pytest.importorskip("fsspec")
pytest.importorskip("pyarrow")

from gemner.data.issues import DataError  # noqa: E402
from gemner.data.remote import MirroredFolder, check_uri, is_uri, local_path, read_uri  # noqa: E402
from gemner.data.types import Post  # noqa: E402
from gemner.data.userposts import RejectedPost, iter_posts  # noqa: E402

LINES = [{"id": "a", "text": "Messi joins Inter Miami"}, {"id": "b", "tokens": ["Obama", "in", "Paris"],
                                                          "image": "b.jpg"}, {"id": "c", "tokens": 3}]


def _memory_uri(name: str) -> str:
    return f"memory://gemner-tests-{uuid.uuid4().hex[:8]}/{name}"


def _put(uri: str, data: bytes) -> None:
    with fsspec.open(uri, "wb") as handle:
        handle.write(data)


def test_uris_are_told_from_paths():
    assert is_uri("s3://bucket/posts.jsonl") and is_uri("file:///tmp/x") and is_uri("memory://b/x")
    assert not is_uri("posts.jsonl") and not is_uri("C:\\posts.jsonl") and not is_uri("-") and not is_uri(None)


@pytest.mark.parametrize("uri", ["s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/posts.jsonl",
                                 "s3://bucket/posts.jsonl?region=eu-west-1&secret_key=wJalrXUtnFEMI",
                                 "gs://bucket/p.jsonl?access_token=ya29.a0AfH6"])
def test_a_uri_carrying_credentials_is_refused_without_repeating_them(uri):
    with pytest.raises(DataError, match="environment") as caught:
        check_uri(uri)
    assert all(secret not in str(caught.value) for secret in ("AKIAEXAMPLE", "wJalr", "ya29"))
    assert check_uri("s3://bucket/posts.jsonl?region=eu-west-1") == "s3://bucket/posts.jsonl?region=eu-west-1"


def test_posts_from_an_in_memory_filesystem_are_validated_like_a_local_file(tmp_path):
    uri = _memory_uri("posts.jsonl.gz")
    _put(uri, gzip.compress("\n".join(json.dumps(line) for line in LINES).encode()))
    assert read_uri(uri)[:2] == b"\x1f\x8b"  # the bytes as stored; the posts reader gunzips
    items = list(iter_posts(uri, images_dir=tmp_path))
    posts = [item for item in items if isinstance(item, Post)]
    assert [p.id for p in posts] == ["a", "b"] and posts[1].image == tmp_path / "b.jpg"
    assert [(r.id, r.path) for r in items if isinstance(r, RejectedPost)] == [("c", uri)]
    with pytest.raises(DataError, match="cannot be read"):
        list(iter_posts(_memory_uri("missing.jsonl")))
    with pytest.raises(DataError, match="no filesystem for this scheme"):
        read_uri("nosuchscheme://bucket/posts.jsonl")


def test_a_file_uri_is_the_local_file(tmp_path):
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in LINES) + "\n")
    uri = path.as_uri()
    assert local_path(uri) == path and local_path(_memory_uri("x")) is None
    assert [item.id for item in iter_posts(uri)] == ["a", "b", "c"]


def test_a_mirrored_folder_copies_files_up_and_back(tmp_path):
    uri = _memory_uri("run")
    first = MirroredFolder.open(uri, tmp_path / "one")
    (first.local / "part-00000.jsonl").write_text('{"id": "a"}\n')
    first.push("part-00000.jsonl")
    assert first.remote_names() == ["part-00000.jsonl"]
    second = MirroredFolder.open(uri, tmp_path / "two")  # another machine, or a lost staging folder
    assert second.pull() == ["part-00000.jsonl"]
    assert (second.local / "part-00000.jsonl").read_text() == '{"id": "a"}\n'
    second.delete("part-00000.jsonl")
    assert first.remote_names() == []
