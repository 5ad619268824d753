"""Bad annotation input: a clear message naming file and line (or post), a documented rule for what
is kept, and never a bare exception. Property-based: random corruptions of valid files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemner.data import FMNERG_SCHEMA, GMNER_SCHEMA, DataError, load_conll_split
from gemner.data.bio import spans_to_tags, tags_to_spans
from gemner.data.issues import IssueLog
from gemner.data.voc import read_boxes

GOOD = "IMGID:1\nTed\tB-PER\nCruz\tI-PER\nspeaks\tO\n\nIMGID:2\nin\tO\nTexas\tB-LOC\n\n"


def _load(tmp_path: Path, text: str | bytes, schema=GMNER_SCHEMA, boxes=None, strict=False):
    path = tmp_path / "split.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return load_conll_split(path, schema, boxes=boxes, strict=strict)


def test_good_file_has_no_issues(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD)
    assert not dataset.issues
    assert [(e.text, e.type) for p in dataset.posts for e in p.entities] == [("Ted Cruz", "PER"), ("Texas", "LOC")]


def test_malformed_line_drops_its_post_and_names_file_and_line(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD.replace("Cruz\tI-PER", "Cruz I-PER"))
    assert [p.id for p in dataset.posts] == ["2"]
    (issue,) = dataset.issues
    assert issue.line == 3 and issue.post_id == "1" and issue.path.endswith("split.txt")
    assert "expected 2 tab-separated fields" in str(issue) and "split.txt:3" in str(issue)


def test_unknown_label_drops_the_post(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD.replace("B-LOC", "B-PLACE"))
    assert [p.id for p in dataset.posts] == ["1"]
    assert "unknown label 'PLACE'" in str(dataset.issues[0]) and dataset.issues[0].line == 8


def test_stray_inside_tag_opens_an_entity_and_is_reported(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD.replace("Texas\tB-LOC", "Texas\tI-LOC"))
    assert dataset.posts[1].entities[0].text == "Texas"
    assert dataset.issues[0].action.startswith("repaired") and dataset.issues[0].line == 8


def test_conlleval_decoding() -> None:
    spans = tags_to_spans(["I-A", "I-A", "B-B", "I-A", "O", "B-A"])
    assert spans == [(0, 2, "A"), (2, 3, "B"), (3, 4, "A"), (5, 6, "A")]
    assert spans_to_tags(4, [(0, 2, "A"), (3, 4, "B")]) == ["B-A", "I-A", "O", "B-B"]


def test_strict_mode_raises_a_data_error_with_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"split\.txt:3 \(post 1\)"):
        _load(tmp_path, GOOD.replace("Cruz\tI-PER", "Cruz\tI-PER\textra"), strict=True)


def test_invalid_utf8_line_is_named(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD.encode().replace(b"Texas", b"Tex\xffas"))
    assert [p.id for p in dataset.posts] == ["1"] and dataset.issues[0].line == 8


def test_fmnerg_inconsistent_coarse_tag_is_repaired_from_fine(tmp_path: Path) -> None:
    text = "IMGID:9\nTed\tB-location\tB-politician\nCruz\tI-person\tI-politician\n\n"
    dataset = _load(tmp_path, text, schema=FMNERG_SCHEMA)
    (entity,) = dataset.posts[0].entities
    assert (entity.type, entity.coarse) == ("politician", "person")
    assert "disagrees" in dataset.issues[0].message and dataset.issues[0].line == 2


def _xml(tmp_path: Path, objects: str, size: str = "<width>100</width><height>50</height>") -> Path:
    folder = tmp_path / "xml"
    folder.mkdir(exist_ok=True)
    (folder / "1.xml").write_text(f"<annotation><size>{size}</size>{objects}</annotation>")
    return folder


def _obj(name: str, x1: int, y1: int, x2: int, y2: int) -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")


def test_box_rules_zero_area_dropped_outside_clipped(tmp_path: Path) -> None:
    xml = _xml(tmp_path, _obj("Ted Cruz", 10, 10, 10, 40) + _obj("Ted Cruz", 90, -5, 130, 30)
               + _obj("Ted Cruz", 200, 10, 300, 40))
    dataset = _load(tmp_path, GOOD, boxes=xml)
    assert dataset.posts[0].entities[0].boxes == ((90, 0, 100, 30),)
    actions = sorted(i.action for i in dataset.issues)
    assert actions == ["clipped to [90, 0, 100, 30]", "dropped box", "dropped box"]
    assert all(i.post_id == "1" and i.path.endswith("1.xml") for i in dataset.issues)


def test_entity_whose_boxes_all_drop_becomes_ungroundable(tmp_path: Path) -> None:
    dataset = _load(tmp_path, GOOD, boxes=_xml(tmp_path, _obj("Ted Cruz", 5, 5, 2, 9)))
    assert dataset.posts[0].entities[0].boxes is None


def test_unparsable_xml_is_ignored_with_its_post_id(tmp_path: Path) -> None:
    folder = tmp_path / "xml"
    folder.mkdir()
    (folder / "1.xml").write_text("<annotation><object>")
    log = IssueLog()
    assert read_boxes(folder, log) == {}
    assert log.issues[0].post_id == "1" and "unreadable xml" in log.issues[0].message


# ---- property-based: random corruptions never escape as anything but DataError ----

token = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=6)
label = st.sampled_from(GMNER_SCHEMA.labels)


@st.composite
def conll_files(draw) -> str:
    lines = []
    for post in range(draw(st.integers(1, 4))):
        lines.append(f"IMGID:{post}")
        tags = draw(st.lists(st.one_of(st.just("O"), label.map(lambda x: "B-" + x), label.map(lambda x: "I-" + x)),
                             min_size=1, max_size=6))
        lines += [f"{draw(token)}\t{tag}" for tag in tags]
        lines.append("")
    return "\n".join(lines) + "\n"


corruption = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10_000)),
    st.tuples(st.just("insert"), st.integers(0, 10_000),
              st.sampled_from(["\t", "\n", "I-", "IMGID:", "B-X", "\xff", " "])),
    st.tuples(st.just("swap-line"), st.integers(0, 100), st.text(max_size=12)),
)


def _corrupt(text: str, ops) -> bytes:
    data = text.encode("utf-8")
    for op in ops:
        if op[0] == "delete" and data:
            i = op[1] % len(data)
            data = data[:i] + data[i + 1:]
        elif op[0] == "insert":
            i = op[1] % (len(data) + 1)
            piece = b"\xff" if op[2] == "\xff" else op[2].encode()
            data = data[:i] + piece + data[i:]
        elif op[0] == "swap-line":
            lines = data.split(b"\n")
            lines[op[1] % len(lines)] = op[2].encode("utf-8")
            data = b"\n".join(lines)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=conll_files(), ops=st.lists(corruption, min_size=1, max_size=4), strict=st.booleans())
def test_random_corruptions_are_reported_never_crash(tmp_path: Path, text: str, ops, strict: bool) -> None:
    corrupted = _corrupt(text, ops)
    try:
        dataset = _load(tmp_path, corrupted, strict=strict)
    except DataError as err:
        assert strict and ":" in str(err)
        return
    written_ids = {line[6:].strip() for line in corrupted.decode("utf-8", "replace").splitlines()
                   if line.startswith("IMGID:")}
    for post in dataset.posts:
        assert post.id in written_ids
        assert post.tokens and all(post.tokens)
        for entity in post.entities:
            assert 0 <= entity.start < entity.end <= len(post.tokens)
            assert entity.type in GMNER_SCHEMA.labels
    for issue in dataset.issues:
        assert issue.path and issue.line is not None
