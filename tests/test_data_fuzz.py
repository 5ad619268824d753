"""Fuzz every reader: files mixing valid records with random junk (random bytes, random JSON, NaN and
Infinity, huge numbers, deep nesting, non-UTF-8 and NUL bytes, valid records with one field broken or
one byte inserted). No reader may raise, and every valid record must come out unchanged.

The default run tries `FAST` examples per reader; `pytest -m slow tests/test_data_fuzz.py
--hypothesis-show-statistics` tries `SLOW` per reader (figures in docs/reliability-fuzz.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemner.data import GMNER_SCHEMA, Box, Entity, PredictedEntity
from gemner.data.conll import read_conll
from gemner.data.issues import IssueLog
from gemner.data.tokenize import tokenize_tweet
from gemner.data.userio import iter_posts, iter_prediction_records, read_gold_jsonl, read_knowledge, read_predictions
from gemner.data.voc import read_boxes_jsonl, read_voc_xml

FAST, SLOW = 40, 10_000

word = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=6)
words = st.lists(word, min_size=1, max_size=6)
label = st.sampled_from(GMNER_SCHEMA.labels)
coordinate = st.floats(0, 1000, allow_nan=False)
extent = st.floats(1, 500, allow_nan=False)
FIELDS = ["id", "text", "tokens", "image", "entities", "start", "end", "type", "coarse", "box", "boxes",
          "scores", "box_status", "knowledge", "caption", "width", "height", "objects", "image_size", "error"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(10**300, 10**320), st.floats(),
                    st.text(max_size=8), st.sampled_from(["", " ", "valid", "computed", "PER", "0"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=5), inner, max_size=5),
                           max_leaves=12)
FRAGMENTS = [b"\xff", b"\xc3", b"\x00", b"NaN", b"-Infinity", b"1e400", b'"\\ud800"', b"\\ud800", b'"', b"{",
             b"}", b"]", b",", b":", b"null", b"\r", b"\t", b"IMGID:", b"<", b"</object>", b"&amp;", b"&bogus;"]


@st.composite
def box(draw) -> list[float]:
    x1, y1 = draw(coordinate), draw(coordinate)
    return [x1, y1, x1 + draw(extent), y1 + draw(extent)]


@st.composite
def broken(draw, template: bytes) -> bytes:
    """A template line with bytes inserted, deleted or cut off."""
    data = template
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "delete", "cut"]))
        if kind == "insert":
            data = data[:at] + draw(st.sampled_from(FRAGMENTS) | st.binary(max_size=3)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + 1:]
        else:
            data = data[:at]
    return data


@st.composite
def mutated(draw, record: dict[str, Any]) -> bytes:
    """A (junk-id) valid record with one field, or one field of one entity, replaced or removed."""
    record = json.loads(json.dumps(record))
    target = record
    if record.get("entities") and draw(st.booleans()):
        target = record["entities"][draw(st.integers(0, len(record["entities"]) - 1))]
    key = draw(st.sampled_from(sorted(target)) | st.sampled_from(FIELDS))
    if draw(st.integers(0, 4)) == 0:
        target.pop(key, None)
    else:
        target[key] = draw(json_values)
    line = json.dumps(record).encode()
    return draw(broken(line)) if draw(st.integers(0, 3)) == 0 else line


def junk_lines(template: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    """Lines that may or may not be valid, none naming a `valid-` id."""
    line = st.one_of(
        st.binary(max_size=40),
        json_values.map(lambda v: json.dumps(v).encode()),
        template.flatmap(mutated),
        template.flatmap(lambda r: broken(json.dumps(r).encode())),
        st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
        st.sampled_from([b"NaN", b"Infinity", b"[1, 2]", b'"text"', b"{}", b'{"id": NaN}', b"1" * 5000]),
    )
    return line.filter(lambda data: b"valid-" not in data)


def _file(draw, path: Path, valid: list[bytes], junk: st.SearchStrategy[bytes]) -> None:
    lines = valid + draw(st.lists(junk, max_size=6))
    path.write_bytes(b"\n".join(draw(st.permutations(lines))) + b"\n")


def fuzz(check):
    """The check as two tests: a fast one (default run) and a slow one with `SLOW` examples."""
    base = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                         HealthCheck.too_slow, HealthCheck.filter_too_much]}

    @settings(max_examples=FAST, **base)
    @given(data=st.data())
    def fast(tmp_path: Path, data) -> None:
        check(tmp_path, data.draw)

    @pytest.mark.slow
    @pytest.mark.timeout(3600)
    @settings(max_examples=SLOW, **base)
    @given(data=st.data())
    def slow(tmp_path: Path, data) -> None:
        check(tmp_path, data.draw)

    return fast, slow


# ---- posts JSONL --------------------------------------------------------------------------------------

def post_record(post_id: str) -> st.SearchStrategy[dict[str, Any]]:
    text = words.map(" ".join).map(lambda t: {"text": t})
    tokens = words.map(lambda ws: {"tokens": ws})
    image = st.one_of(st.just({}), word.map(lambda w: {"image": f"{w}.jpg"}))
    return st.tuples(text | tokens, image).map(lambda parts: {"id": post_id, **parts[0], **parts[1]})


def check_posts(tmp_path: Path, draw) -> None:
    records = [draw(post_record(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    path = tmp_path / "posts.jsonl"
    _file(draw, path, [json.dumps(r).encode() for r in records], junk_lines(post_record("junk")))
    read = {item.id: item for item in iter_posts(path, log=IssueLog())}
    for record in records:
        post = read[record["id"]]
        assert post.tokens == record.get("tokens", tokenize_tweet(record.get("text", "")))
        assert post.image == (tmp_path / record["image"] if "image" in record else None)


test_posts_reader_fuzz, test_posts_reader_fuzz_slow = fuzz(check_posts)


# ---- predictions and gold JSONL -----------------------------------------------------------------------

@st.composite
def span(draw, n_tokens: int) -> tuple[int, int]:
    start = draw(st.integers(0, n_tokens - 1))
    return start, draw(st.integers(start + 1, n_tokens))


@st.composite
def prediction(draw, post_id: str) -> dict[str, Any]:
    tokens = draw(words)
    entities = []
    for _ in range(draw(st.integers(0, 3))):
        start, end = draw(span(len(tokens)))
        kind = draw(label)
        entities.append({"start": start, "end": end, "text": " ".join(tokens[start:end]), "type": kind,
                         "coarse": kind, "box": draw(st.none() | box()),
                         "box_status": draw(st.sampled_from(["computed", "not_computed"])),
                         "scores": {"itm": draw(st.floats(0, 1)), "topk": [[kind, draw(st.floats(0, 1))]]}})
    return {"id": post_id, "tokens": tokens, "image": None, "entities": entities}


def _as_entity(data: dict[str, Any]) -> PredictedEntity:
    return PredictedEntity(data["start"], data["end"], data["text"], data["type"], data["coarse"],
                           Box(*data["box"]) if data["box"] else None, data["scores"], data["box_status"])


def check_predictions(tmp_path: Path, draw) -> None:
    records = [draw(prediction(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    path = tmp_path / "pred.jsonl"
    _file(draw, path, [json.dumps(r).encode() for r in records], junk_lines(prediction("junk")))
    predicted = read_predictions(path, IssueLog(), schema=draw(st.none() | st.just(GMNER_SCHEMA)))
    raw = {record["id"]: record for _, record in iter_prediction_records(path, IssueLog())}
    for record in records:
        assert predicted[record["id"]] == [_as_entity(e) for e in record["entities"]]
        assert raw[record["id"]]["entities"] == record["entities"]


test_predictions_reader_fuzz, test_predictions_reader_fuzz_slow = fuzz(check_predictions)


@st.composite
def gold(draw, post_id: str) -> dict[str, Any]:
    record = draw(prediction(post_id))
    for entity in record["entities"]:
        entity["boxes"] = draw(st.none() | st.lists(box(), min_size=1, max_size=2))
    record["image_size"] = draw(st.none() | st.lists(st.integers(1, 2000), min_size=2, max_size=2))
    return record


def check_gold(tmp_path: Path, draw) -> None:
    records = [draw(gold(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    path = tmp_path / "gold.jsonl"
    _file(draw, path, [json.dumps(r).encode() for r in records], junk_lines(gold("junk")))
    posts = {post.id: post for post in read_gold_jsonl(path, GMNER_SCHEMA, IssueLog())}
    for record in records:
        post = posts[record["id"]]
        assert post.tokens == record["tokens"]
        assert post.image_size == (tuple(record["image_size"]) if record["image_size"] else None)
        assert post.entities == [
            Entity(e["start"], e["end"], e["text"], e["type"], e["type"],
                   tuple(Box(*b) for b in e["boxes"]) if e["boxes"] else None) for e in record["entities"]]


test_gold_reader_fuzz, test_gold_reader_fuzz_slow = fuzz(check_gold)


# ---- knowledge JSONL ----------------------------------------------------------------------------------

def knowledge_record(post_id: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda k, c: {"id": post_id, "knowledge": k, "caption": c}, st.text(max_size=20),
                     st.text(max_size=20))


def check_knowledge(tmp_path: Path, draw) -> None:
    records = [draw(knowledge_record(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    path = tmp_path / draw(st.sampled_from(["knowledge.jsonl", "knowledge.jsonl.gz"]))
    _file(draw, path, [json.dumps(r).encode() for r in records], junk_lines(knowledge_record("junk")))
    if path.suffix == ".gz":
        import gzip

        path.write_bytes(gzip.compress(path.read_bytes()))
    knowledge = read_knowledge(path, IssueLog())
    for record in records:
        assert knowledge[record["id"]] == (record["knowledge"], record["caption"])


test_knowledge_reader_fuzz, test_knowledge_reader_fuzz_slow = fuzz(check_knowledge)


# ---- boxes JSONL and VOC xml --------------------------------------------------------------------------

def boxes_record(post_id: str) -> st.SearchStrategy[dict[str, Any]]:
    objects = st.lists(st.tuples(word, box()).map(list), max_size=3)
    return st.builds(lambda w, h, o: {"id": post_id, "width": w, "height": h, "depth": 3, "objects": o},
                     st.integers(1, 2000), st.integers(1, 2000), objects)


def check_boxes(tmp_path: Path, draw) -> None:
    records = [draw(boxes_record(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    path = tmp_path / "boxes.jsonl"
    _file(draw, path, [json.dumps(r).encode() for r in records], junk_lines(boxes_record("junk")))
    annotations = read_boxes_jsonl(path, IssueLog())
    for record in records:
        assert annotations[record["id"]].objects == [(name, Box(*b)) for name, b in record["objects"]]


test_boxes_reader_fuzz, test_boxes_reader_fuzz_slow = fuzz(check_boxes)

NUMBERS = ["abc", "nan", "inf", "-inf", "1e400", "", " 7 ", "12.5", "-3", "9" * 400]


def _object(name: str, values: list[str]) -> str:
    tags = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), values, strict=True))
    return f"<object><name>{name}</name><bndbox>{tags}</bndbox></object>"


def check_voc(tmp_path: Path, draw) -> None:
    valid = [(f"valid-{i}", [int(v) for v in draw(box())]) for i in range(draw(st.integers(0, 4)))]
    junk = draw(st.lists(st.builds(lambda n, v: _object(n, v), st.sampled_from(["", " ", "junk", "<x/>"]),
                                   st.lists(st.sampled_from(NUMBERS), min_size=4, max_size=4)), max_size=4))
    extra = draw(st.sampled_from(["", "<object/>", "<object><name>x</name></object>", "<size/>", "<!-- c -->"]))
    objects = draw(st.permutations([_object(n, [str(v) for v in b]) for n, b in valid] + junk + [extra]))
    size = "".join(f"<{k}>{draw(st.sampled_from(NUMBERS))}</{k}>" for k in ("width", "height", "depth"))
    text = f"<annotation><size>{size}</size>{''.join(objects)}</annotation>".encode()
    intact = draw(st.booleans())
    path = tmp_path / "post.xml"
    path.write_bytes(text if intact else draw(broken(text) | st.binary(max_size=60)))
    annotation = read_voc_xml(path, IssueLog())
    if intact:
        assert annotation is not None
        for name, values in valid:
            assert (name, Box(*values)) in annotation.objects


test_voc_xml_reader_fuzz, test_voc_xml_reader_fuzz_slow = fuzz(check_voc)


# ---- CoNLL --------------------------------------------------------------------------------------------

@st.composite
def conll_post(draw, post_id: str) -> tuple[str, list[str], list[str]]:
    tokens = draw(words)
    tags = [draw(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "B-bogus", "x"])) for _ in tokens]
    return post_id, tokens, tags


def _conll_block(post: tuple[str, list[str], list[str]]) -> bytes:
    post_id, tokens, tags = post
    return "\n".join([f"IMGID:{post_id}", *(f"{t}\t{tag}" for t, tag in zip(tokens, tags, strict=True))]).encode()


def check_conll(tmp_path: Path, draw) -> None:
    posts = [draw(conll_post(f"valid-{i}")) for i in range(draw(st.integers(0, 4)))]
    junk_line = (st.sampled_from(FRAGMENTS) | st.binary(max_size=20) | st.just(b"IMGID:")
                 | conll_post("junk").map(_conll_block).flatmap(broken)).filter(lambda d: b"valid-" not in d)
    junk = st.lists(junk_line, max_size=5).map(lambda lines: b"\n".join([b"IMGID:junk", *lines]))
    blocks = [_conll_block(p) for p in posts] + draw(st.lists(junk, max_size=3))
    path = tmp_path / "split.txt"
    path.write_bytes(b"\n\n".join(draw(st.permutations(blocks))) + b"\n")
    records = {record.id: record for record in read_conll(path, 1, IssueLog())}
    for post_id, tokens, tags in posts:
        assert records[post_id].tokens == tokens and records[post_id].columns == [tags]


test_conll_reader_fuzz, test_conll_reader_fuzz_slow = fuzz(check_conll)
