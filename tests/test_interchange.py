"""Interchange: predictions out to CoNLL, spaCy and Label Studio; Label Studio exports and CoNLL files in as
training data; `gemner train recognizer --train/--dev` on a person's own files, then predicting with it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data.interchange import (
    export_predictions,
    import_annotations,
    load_training_files,
    post_text,
    schema_from_file,
)
from gemner.data.interchange.conll_in import read_user_conll
from gemner.data.issues import DataError, IssueLog
from imagefiles import blank_png

RAW = "Obama  visits 🗽 New York!\n"
TOKENS = ["Obama", "visits", "🗽", "New", "York", "!"]


def _entity(start, end, text, type_, coarse, box=None, **extra):
    return {"start": start, "end": end, "text": text, "type": type_, "coarse": coarse, "box": box,
            "box_status": "computed", "scores": {"topk": [[type_, 0.75]]}, **extra}


def _predictions(tmp_path: Path, *, with_chars: bool = True) -> Path:
    image = blank_png(tmp_path / "a.png", 200, 100)
    chars = {"start_char": 0, "end_char": 5} if with_chars else {}
    records = [
        {"id": "a", "tokens": TOKENS, "text": RAW, "image": str(image),
         "entities": [_entity(0, 1, "Obama", "politician", "person", [20, 10, 120, 90], **chars),
                      _entity(3, 5, "New York", "city", "location")]},
        {"id": "b", "tokens": ["RT", "@x", "Messi", "wins"], "image": None,
         "entities": [_entity(2, 3, "Messi", "athlete", "person", [1, 1, 5, 5]),
                      _entity(2, 4, "Messi wins", "event_other", "event")]},  # overlaps the first
    ]
    path = tmp_path / "preds.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n{broken\n", encoding="utf-8")
    return path


# ---- character spans -----------------------------------------------------------------------------------

def test_char_spans_use_the_raw_text_and_offsets_when_present_else_the_joined_tokens():
    entity = {"start": 3, "end": 5}
    raw = post_text({"tokens": TOKENS, "text": RAW})
    assert raw.raw and raw.text == RAW
    start, end = raw.entity_chars(entity)  # no start_char: found from the tokens in the raw text
    assert RAW[start:end] == "New York"
    assert raw.entity_chars({**entity, "start_char": 16, "end_char": 19}) == (16, 19)  # given offsets win
    assert raw.entity_chars({**entity, "start_char": 16, "end_char": 99}) == (start, end)  # outside: ignored
    joined = post_text({"tokens": TOKENS})
    assert not joined.raw and joined.text == " ".join(TOKENS)
    assert joined.entity_chars({**entity, "start_char": 0, "end_char": 2}) == (15, 23)  # offsets of no text
    assert joined.text[15:23] == "New York"
    # tokens that are not a tokenization of the text: the joined tokens are shown instead
    assert not post_text({"tokens": ["Obama", "x"], "text": "Obama visits"}).raw
    assert post_text({"tokens": TOKENS, "text": RAW}).entity_chars({"start": 5, "end": 9}) is None


# ---- export ------------------------------------------------------------------------------------------

def test_export_conll_writes_both_label_levels_and_reads_back(tmp_path):
    log = IssueLog()
    counts = export_predictions(_predictions(tmp_path), "conll", tmp_path / "out.txt", log=log)
    assert (counts.posts, counts.entities, counts.skipped_entities) == (2, 3, 1)
    text = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert text.startswith("IMGID:a\nObama\tB-person\tB-politician\nvisits\tO\tO\n")
    assert "New\tB-location\tB-city\nYork\tI-location\tI-city\n" in text
    assert "Messi\tB-person\tB-athlete\nwins\tO\tO\n\n" in text
    problems = [str(i) for i in log.issues]
    assert any("preds.jsonl:3" in p and "skipped line" in p for p in problems)  # the broken line, named
    assert any("(post b)" in p and "overlaps" in p for p in problems)
    records, columns = read_user_conll(tmp_path / "out.txt", IssueLog())
    assert columns == 2 and [r.id for r in records] == ["a", "b"] and records[0].tokens == TOKENS


def test_export_spacy_docbin_has_char_span_entities_on_raw_and_joined_text(tmp_path):
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import DocBin

    for with_chars in (True, False):
        log = IssueLog()
        export_predictions(_predictions(tmp_path, with_chars=with_chars), "spacy", tmp_path / "out.spacy", log=log)
        docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("xx").vocab))
        assert [d.user_data["gemner"]["id"] for d in docs] == ["a", "b"]
        a, b = docs
        assert a.text == RAW  # the raw text, double space, emoji and newline kept
        assert [(e.text, e.label_, e.start_char, e.end_char) for e in a.ents] == [
            ("Obama", "politician", 0, 5), ("New York", "city", RAW.index("New"), RAW.index("!"))]
        assert [(s.text, s.label_) for s in a.spans["coarse"]] == [("Obama", "person"), ("New York", "location")]
        assert a.user_data["gemner"]["entities"][0]["box"] == (20, 10, 120, 90)
        assert b.text == "RT @x Messi wins"  # no raw text: the tokens joined by single spaces
        assert [(e.text, e.label_) for e in b.ents] == [("Messi", "athlete")]  # the overlapping one left out
        assert any("overlap another" in str(i) for i in log.issues)


def test_export_label_studio_tasks_with_text_spans_percent_boxes_and_a_config(tmp_path):
    log = IssueLog()
    counts = export_predictions(_predictions(tmp_path), "label-studio", tmp_path / "tasks.json",
                                image_url="/data/local-files/?d=", log=log)
    assert (counts.posts, counts.entities, counts.boxes, counts.skipped_boxes) == (2, 4, 1, 1)
    a, b = json.loads((tmp_path / "tasks.json").read_text(encoding="utf-8"))
    assert a["data"]["text"] == RAW and a["data"]["image"].startswith("/data/local-files/?d=")
    assert a["data"]["coarse_of"] == {"politician": "person", "city": "location"}
    results = a["predictions"][0]["result"]
    spans = [r for r in results if r["type"] == "labels"]
    for span in spans:
        assert span["from_name"] == "label" and span["to_name"] == "text"
        assert RAW[span["value"]["start"]:span["value"]["end"]] == span["value"]["text"]
    assert [s["value"]["labels"] for s in spans] == [["politician"], ["city"]]
    (box,) = [r for r in results if r["type"] == "rectanglelabels"]
    assert (box["original_width"], box["original_height"]) == (200, 100)  # read from the PNG header
    assert box["value"] | {} == {"x": 10.0, "y": 10.0, "width": 50.0, "height": 80.0, "rotation": 0,
                                 "rectanglelabels": ["politician"]}
    (relation,) = [r for r in results if r["type"] == "relation"]
    assert (relation["from_id"], relation["to_id"]) == (spans[0]["id"], box["id"])
    assert not [r for r in b["predictions"][0]["result"] if r["type"] == "rectanglelabels"]
    assert any("(post b)" in str(i) and "left out box" in str(i) for i in log.issues)  # no image: no size
    config = ET.fromstring((tmp_path / "tasks.config.xml").read_text())
    names = {tag.get("name") for tag in config}
    assert {"label", "text", "image", "box"} <= names
    assert {label.get("value") for label in config.find("Labels")} == {"politician", "city", "athlete",
                                                                       "event_other"}


# ---- import ------------------------------------------------------------------------------------------

def _studio_export(tmp_path: Path) -> Path:
    text = "Ted Cruz 😀 speaks in Houston"
    houston = text.index("Houston")
    tasks = [
        {"id": 7, "data": {"text": text, "image": "/data/upload/1/x.jpg"}, "annotations": [
            {"was_cancelled": True, "result": [{"id": "z", "type": "labels",
                                                "value": {"start": 0, "end": 3, "text": "Ted", "labels": ["X"]}}]},
            {"result": [
                {"id": "t1", "type": "labels", "from_name": "label", "to_name": "text",
                 "value": {"start": 0, "end": 8, "text": "Ted Cruz", "labels": ["politician"]}},
                # a UTF-16 count (the emoji as two characters) put this span one character late
                {"id": "t2", "type": "labels", "value": {"start": houston + 1, "end": houston + 8,
                                                         "text": "Houston", "labels": ["city"]}},
                {"id": "r1", "type": "rectanglelabels", "original_width": 400, "original_height": 200,
                 "value": {"x": 25, "y": 50, "width": 50, "height": 25, "rectanglelabels": ["politician"]}},
                {"type": "relation", "from_id": "t1", "to_id": "r1"},
                {"id": "r2", "type": "rectanglelabels",
                 "value": {"x": 1, "y": 1, "width": 5, "height": 5, "rectanglelabels": ["city"]}},
            ]}]},
        {"id": 8, "data": {"text": "no annotation here"}, "annotations": []},
        {"id": 9, "data": {"image": "only an image"}},
        {"id": 10, "data": {"text": "Obama met Merkel"}, "annotations": [{"result": [
            {"id": "p", "type": "labels", "value": {"start": 0, "end": 3, "text": "Oba", "labels": ["politician"]}},
        ]}]},
        # the JSON-MIN export's shape
        {"id": 11, "text": "Merkel in Berlin",
         "label": [{"start": 10, "end": 16, "text": "Berlin", "labels": ["city"]}]},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return path


def test_import_label_studio_export_repairs_offsets_links_boxes_and_reports_the_rest(tmp_path):
    log = IssueLog()
    counts, schema = import_annotations(_studio_export(tmp_path), tmp_path / "gold.jsonl", log=log)
    assert (counts.posts, counts.entities, counts.boxes) == (3, 4, 1)
    assert schema["labels"] == ["city", "politician"] and schema["labels"] == schema["coarse_labels"]
    first, second, third = (json.loads(line) for line in (tmp_path / "gold.jsonl").read_text().splitlines())
    assert (third["id"], third["entities"][0]["text"], third["entities"][0]["start"]) == ("11", "Berlin", 2)
    assert first["id"] == "7" and first["tokens"][:3] == ["Ted", "Cruz", "😀"]
    ted, houston = first["entities"]
    assert (ted["text"], ted["type"], ted["boxes"]) == ("Ted Cruz", "politician", [[100, 100, 300, 150]])
    assert (houston["text"], houston["type"], houston["boxes"]) == ("Houston", "city", None)
    assert second["entities"][0]["text"] == "Obama"  # "Oba" widened to the whole token
    problems = [str(i) for i in log.issues]
    for expected in ("task #1 (post 7): span t2 offsets do not select its text -> moved to",
                     "no readable image (r2) -> left out box", "task #2 (post 8): task has no annotation",
                     'task #3 (post 9): task has no "data.text"', "span p cuts a token -> widened"):
        assert any(expected in p for p in problems), (expected, problems)


def test_label_studio_round_trip_keeps_entities_boxes_and_both_levels(tmp_path):
    export_predictions(_predictions(tmp_path), "label-studio", tmp_path / "tasks.json")
    _, schema = import_annotations(tmp_path / "tasks.json", tmp_path / "gold.jsonl", use_predictions=True)
    assert schema["coarse_of"]["politician"] == "person"  # two levels, from the tasks' coarse_of
    a, b = (json.loads(line) for line in (tmp_path / "gold.jsonl").read_text().splitlines())
    assert a["tokens"] == TOKENS and b["tokens"] == ["RT", "@x", "Messi", "wins"]  # the tasks' own tokens
    assert [(e["start"], e["end"], e["type"], e["coarse"], e["boxes"]) for e in a["entities"]] == [
        (0, 1, "politician", "person", [[20, 10, 120, 90]]), (3, 5, "city", "location", None)]
    # without --predictions an unannotated task is not training data
    with pytest.raises(DataError, match="no entities"):
        import_annotations(tmp_path / "tasks.json", tmp_path / "none.jsonl")


# ---- user CoNLL files and label sets -------------------------------------------------------------------

CONLL_TWO = """-DOCSTART- -X- O O

Messi B-person S-athlete
scores O O
in O O
Paris B-place B-city

Obama B-person B-politician
visits O O
New B-place B-city
York I-place E-city
"""


def test_user_conll_without_ids_space_separated_bioes_and_bad_lines(tmp_path):
    path = tmp_path / "mine.conll"
    path.write_text(CONLL_TWO + "\nbad line with five columns\n", encoding="utf-8")
    log = IssueLog()
    records, columns = read_user_conll(path, log)
    assert columns == 2 and [r.id for r in records] == ["mine-1", "mine-2"]
    assert records[0].columns[1] == ["B-athlete", "O", "O", "B-city"]  # S- read as B-
    assert records[1].columns[1][2:] == ["B-city", "I-city"]  # E- read as I-
    assert [(i.line, i.action) for i in log.issues] == [(13, "dropped post")]
    (tmp_path / "four.conll").write_text("EU NNP B-NP B-ORG\n")
    with pytest.raises(DataError, match=r"four\.conll:1: expected"):
        read_user_conll(tmp_path / "four.conll", IssueLog())


def test_label_schema_comes_from_the_files_or_a_labels_file(tmp_path):
    (tmp_path / "train.conll").write_text(CONLL_TWO, encoding="utf-8")
    (tmp_path / "dev.txt").write_text("IMGID:d1\nMerkel\tB-person\tB-politician\nin\tO\tO\nTokyo\tB-place\tB-town\n")
    data = load_training_files(tmp_path / "train.conll", tmp_path / "dev.txt")
    assert data.schema.hierarchical and data.schema.labels == ("athlete", "city", "politician", "town")
    assert data.schema.coarse_labels == ("person", "place") and data.schema.coarse_of["town"] == "place"
    assert [(e.text, e.type, e.coarse) for e in data.train[1].entities] == [
        ("Obama", "politician", "person"), ("New York", "city", "place")]
    coarse = load_training_files(tmp_path / "train.conll", tmp_path / "dev.txt", "coarse")
    assert not coarse.schema.hierarchical and coarse.schema.labels == ("person", "place")
    assert [e.type for e in coarse.dev[0].entities] == ["person", "place"]
    (tmp_path / "labels.yaml").write_text("person: [athlete, politician]\nplace: [city]\n")
    fixed = load_training_files(tmp_path / "train.conll", tmp_path / "dev.txt", str(tmp_path / "labels.yaml"))
    assert fixed.schema.labels == ("athlete", "politician", "city") and fixed.dev == []  # "town" unknown
    assert any("unknown label 'town'" in str(i) and "dev.txt:4" in str(i) for i in fixed.issues)
    assert schema_from_file(tmp_path / "labels.yaml").coarse_of["city"] == "place"
    (tmp_path / "flat.conll").write_text("Messi\tB-PER\nin\tO\nParis\tB-LOC\n")
    assert not load_training_files(tmp_path / "flat.conll", tmp_path / "flat.conll").schema.hierarchical


# ---- training on a person's own files, end to end -----------------------------------------------------

def _run(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("levels", ["coarse", "coarse+fine"])
def test_train_on_own_conll_then_predict(encoder_dir, tmp_path, levels):
    rows = CONLL_TWO.replace(" ", "\t") if levels == "coarse+fine" else "\n".join(
        " ".join(line.split()[:2]) for line in CONLL_TWO.splitlines())
    (tmp_path / "train.conll").write_text(rows, encoding="utf-8")
    run = tmp_path / "run"
    result = _run(["train", "recognizer", "--train", str(tmp_path / "train.conll"), "--dev",
                   str(tmp_path / "train.conll"), "--encoder", encoder_dir, "--epochs", "1", "--batch-size", "2",
                   "--output", str(run), "--no-progress", "--no-bf16", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "training recogniser on train (2 train / 2 dev posts" in result.output
    labels = json.loads((run / "labels.json").read_text())
    if levels == "coarse":
        assert labels["labels"] == labels["coarse_labels"] == ["person", "place"]
    else:
        assert labels["labels"] == ["athlete", "city", "politician"]
        assert labels["coarse_labels"] == ["person", "place"]
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "q", "text": "Messi visits Paris"}\n')
    preds = tmp_path / "preds.jsonl"
    result = _run(["predict", "--recognizer", str(run), "--input", str(posts), "--output", str(preds),
                   "--no-progress"])
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in preds.read_text().splitlines()]
    assert record["id"] == "q" and record["tokens"] == ["Messi", "visits", "Paris"]
    assert all(e["type"] in labels["labels"] for e in record["entities"])
    topk = [label for entity in record["entities"] for label, _ in entity["scores"]["topk"]]
    assert set(topk) <= set(labels["labels"])


def test_cli_export_import_and_clear_errors(tmp_path):
    preds = _predictions(tmp_path)
    result = _run(["export", str(preds), "--to", "label-studio", "--output", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    assert "2 posts, 4 entities, 1 boxes (1 boxes left out)" in result.output and "preds.jsonl:3" in result.output
    result = _run(["import", str(tmp_path / "t.json"), "--predictions", "--output", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 0, result.output
    assert "2 posts, 3 entities, 1 boxes" in result.output and "2 coarse / 3 fine labels" in result.output
    assert "overlaps another" in result.output
    result = _run(["export", str(preds), "--to", "conll", "--output", str(tmp_path / "p.txt")])
    assert result.exit_code == 0, result.output
    result = _run(["import", str(tmp_path / "p.txt"), "--labels", "coarse", "--output", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 0 and "2 posts, 3 entities, 0 boxes; 2 labels" in result.output, result.output
    a, _ = (json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines())
    assert [(e["text"], e["type"]) for e in a["entities"]] == [("Obama", "person"), ("New York", "location")]
    result = _run(["train", "recognizer", "--train", str(tmp_path / "g.jsonl")])
    assert result.exit_code == 2 and "--train and --dev go together" in result.output
    result = _run(["export", str(preds), "--to", "brat", "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown format" in result.output


def test_spacy_export_without_spacy_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "spacy", None)  # as if spaCy were not installed
    result = _run(["export", str(_predictions(tmp_path)), "--to", "spacy", "--output", str(tmp_path / "x.spacy")])
    assert result.exit_code == 2 and "pip install 'spacy>=3.7,<4'" in result.output
    assert not (tmp_path / "x.spacy").exists()
