"""The one predictions writer: one writer per file, never an input, never a foreign file, errors
retried on resume, and recovery from any content already in the output (hypothesis fuzz)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemner.data.issues import DataError
from gemner.data.userio import prediction_record
from gemner.data.writer import PredictionWriter

SRC = Path(__file__).resolve().parents[1] / "src"


def _record(post_id: str, error: str | None = None) -> dict:
    return prediction_record(post_id, [], error=error)


def test_a_second_writer_on_the_same_file_is_refused(tmp_path):
    path = tmp_path / "out.jsonl"
    with PredictionWriter(path) as first:
        with pytest.raises(DataError, match="another run is writing"):
            PredictionWriter(path)
        first.write(_record("a"))
    with PredictionWriter(path) as again:  # released on close
        assert again.done_ids == {"a"}


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    path = tmp_path / "out.jsonl"
    script = textwrap.dedent(f"""
        import sys, time
        from gemner.data.writer import PredictionWriter
        writer = PredictionWriter({str(path)!r})
        writer.write({{"id": "a", "entities": []}})
        print("ready", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(DataError, match="another run"):
            PredictionWriter(path)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with PredictionWriter(path) as writer:
        assert writer.done_ids == {"a"}


def test_the_output_may_not_be_an_input(tmp_path):
    source = tmp_path / "posts.jsonl"
    source.write_text('{"id": "1", "text": "hi"}\n')
    with pytest.raises(DataError, match="also an input"):
        PredictionWriter(tmp_path / "." / "posts.jsonl", inputs=[source])
    os.link(source, tmp_path / "hard.jsonl")
    with pytest.raises(DataError, match="also an input"):
        PredictionWriter(tmp_path / "hard.jsonl", resume=False, inputs=[source])
    assert source.read_text() == '{"id": "1", "text": "hi"}\n'


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage\n", b"just some notes\nnot json\n", b"plain text"])
def test_a_foreign_output_is_refused_and_left_as_it_is(tmp_path, content):
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    for resume in (True, False):
        with pytest.raises(DataError, match="choose another --output"):
            PredictionWriter(path, resume=resume)
        assert path.read_bytes() == content
    with pytest.raises(DataError, match="is a folder"):
        PredictionWriter(tmp_path)


def test_error_records_are_retried_or_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    with PredictionWriter(path) as writer:
        writer.write_all([_record("a"), _record("b", error="server unreachable"), _record("c")])
    with PredictionWriter(path, retry_errors=False) as writer:
        assert writer.done_ids == {"a", "b", "c"} and writer.counts.retried == 0
    with PredictionWriter(path) as writer:
        assert writer.done_ids == {"a", "c"} and writer.counts.retried == 1
        assert [p for p in writer.pending(["a", "b", "c"], key=str)] == ["b"] and writer.counts.resumed == 2
        writer.write(_record("b"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "c", "b"] and not any("error" in r for r in records)


def test_a_record_holding_a_unicode_line_separator_is_one_line(tmp_path):
    path = tmp_path / "out.jsonl"
    with PredictionWriter(path) as writer:
        writer.write({**_record("a"), "tokens": ["x\u2028y", "\u0085"]})
    with PredictionWriter(path) as writer:
        assert writer.done_ids == {"a"}


# ----------------------------------------------------------------- recovery fuzz
_valid = st.builds(lambda i, err: json.dumps(_record(f"p{i}", "failed" if err else None), ensure_ascii=False),
                   st.integers(0, 30), st.booleans())
_json_noise = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=3),
                           max_leaves=6).map(lambda v: json.dumps(v, ensure_ascii=False))
_line = st.one_of(_valid, _json_noise, st.text(max_size=30).filter(lambda t: "\n" not in t))
_content = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda lines, tail: ("\n".join(lines) + "\n").encode() + tail,
              st.lists(_line, max_size=12), st.binary(max_size=20)),
)


def _check_recovery(tmp_path: Path, content: bytes, retry: bool) -> None:
    path = tmp_path / "out.jsonl"
    for leftover in (path, path.with_name("out.jsonl.lock"), path.with_name("out.jsonl.tmp")):
        leftover.unlink(missing_ok=True)
    path.write_bytes(content)
    complete = content[: content.rfind(b"\n") + 1]
    try:
        before = complete.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        before = None
    try:
        writer = PredictionWriter(path, retry_errors=retry)
    except DataError:
        assert path.read_bytes() == content  # refused: untouched
        return
    assert before is not None, "a file with bytes that are not UTF-8 must be refused"
    with writer:
        writer.write(_record("new-post"))
    after = path.read_bytes().decode("utf-8").split("\n")
    assert after[-1] == "" and after[-2] == json.dumps(_record("new-post"))
    for line in before:
        try:
            data = json.loads(line)
        except ValueError:
            assert line in after  # foreign lines are kept as they are
            continue
        is_record = isinstance(data, dict) and data.get("id") is not None and isinstance(data.get("entities", []),
                                                                                        list)
        if is_record and data.get("error") and retry:
            assert line not in after[:-2]  # dropped: redone by this run
        else:
            assert line in after  # every valid record survives
            if is_record:
                assert str(data["id"]) in writer.done_ids


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(content=_content, retry=st.booleans())
def test_recovery_from_any_output_content(tmp_path, content, retry):
    _check_recovery(tmp_path, content, retry)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 40 s to 2 minutes on 2 busy cores
@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_content, retry=st.booleans())
def test_recovery_from_any_output_content_many(tmp_path, content, retry):
    _check_recovery(tmp_path, content, retry)
