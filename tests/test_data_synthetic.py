"""`gemner data synthetic`: the benchmark reads back through the upstream readers, stats and the scorer."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from typer.testing import CliRunner

from gemner.cli.main import app
from gemner.data import FMNERG_SCHEMA, SPLITS, load_upstream
from gemner.data.drawing import COLOURS, SMALL_AREA_FRACTION
from gemner.data.folders import load_split
from gemner.data.images import load_image
from gemner.data.issues import DataError
from gemner.data.synthetic import (
    EMBLEM_SHAPES,
    IMAGE_SIDE,
    LARGEST_OBJECT_FRACTION,
    LOOKALIKE_FAMILIES,
    LOOKALIKE_NAMES,
    write_synthetic_benchmark,
)
from gemner.data.userio import prediction_record, read_knowledge
from gemner.evaluation import gold_as_predictions
from gemner.evaluation.scorer import IOU_THRESHOLD
from gemner.ground.segment import centre_box

runner = CliRunner()
LOOKALIKES = set(LOOKALIKE_NAMES)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic") / "bench"
    result = runner.invoke(app, ["data", "synthetic", "--out", str(folder), "--posts", "120", "--seed", "5"])
    assert result.exit_code == 0, result.output
    return folder


def test_upstream_layout_reads_back_without_issues(bench):
    for split in SPLITS:
        dataset = load_upstream(bench / "txt", split, FMNERG_SCHEMA, bench / "xml", bench / "images")
        assert dataset.issues == []
        assert len(dataset.posts) == len(list((bench / "txt" / f"{split}.txt").read_text().split("IMGID:"))) - 1
        for post in dataset.posts:
            assert post.image == bench / "images" / f"{post.id}.jpg" and post.image_size == (IMAGE_SIDE, IMAGE_SIDE)
            assert (bench / "xml" / f"{post.id}.xml").is_file()
    assert len({p.id for s in SPLITS for p in load_split(bench, s).posts}) == 120


def test_a_third_drawn_some_small_the_rest_not_shown(bench):
    entities = [e for split in SPLITS for p in load_split(bench, split).posts for e in p.entities]
    drawn = [e for e in entities if e.boxes is not None]
    assert 0.25 < len(drawn) / len(entities) < 0.42
    assert len({e.coarse for e in entities}) >= 5 and len({e.type for e in entities}) >= 10
    small = [e for e in drawn if e.boxes[0].area < SMALL_AREA_FRACTION * IMAGE_SIDE ** 2]
    assert small and len(small) < len(drawn)
    assert all(len(e.boxes) == 1 for e in drawn)


def test_no_drawn_object_is_found_by_a_centred_guess(bench):
    # every drawn entity has to be localised: the centre-box baseline's box never reaches IoU > 0.5 with one
    guess = centre_box(IMAGE_SIDE, IMAGE_SIDE)
    boxes = [e.boxes[0] for split in SPLITS for p in load_split(bench, split).posts for e in p.entities if e.boxes]
    assert boxes and all(box.area <= LARGEST_OBJECT_FRACTION * IMAGE_SIDE ** 2 for box in boxes)
    assert max(box.iou(guess) for box in boxes) <= IOU_THRESHOLD  # a hit needs IoU > IOU_THRESHOLD
    assert max(box.area for box in boxes) > 0.8 * LARGEST_OBJECT_FRACTION * IMAGE_SIDE ** 2  # large ones exist


def test_lookalikes_are_decided_by_the_image_not_the_text(bench):
    types_of_name: dict[str, set[str]] = defaultdict(set)
    colour_of_type = {fine: colour for family in LOOKALIKE_FAMILIES.values() for fine, colour in family.items()}
    checked = 0
    for split in SPLITS:
        for post in load_split(bench, split).posts:
            for entity in post.entities:
                if entity.text not in LOOKALIKES:
                    continue
                types_of_name[entity.text].add(entity.type)
                box = entity.boxes[0]  # look-alikes are always drawn, large
                pixels = np.asarray(load_image(post.image), dtype=np.float32)
                cx, cy = int((box.x1 + box.x2) / 2), int((box.y1 + box.y2) / 2)
                centre = pixels[cy - 2:cy + 3, cx - 2:cx + 3].reshape(-1, 3).mean(0)
                nearest = min(COLOURS, key=lambda c: float(np.abs(centre - np.array(COLOURS[c])).sum()))
                assert nearest == colour_of_type[entity.type]  # the drawn colour names the fine type
                checked += 1
    assert checked >= 30
    assert any(len(types) >= 2 for types in types_of_name.values())  # one name, several fine types
    families = {name: {FMNERG_SCHEMA.coarse_of[t] for t in types} for name, types in types_of_name.items()}
    assert any(len(coarse) == 2 for coarse in families.values())  # and both coarse types


def test_captions_name_what_is_drawn(bench):
    knowledge = read_knowledge(bench / "knowledge.jsonl")
    posts = [p for split in SPLITS for p in load_split(bench, split).posts]
    assert set(knowledge) == {p.id for p in posts}
    for post in posts:
        text, caption = knowledge[post.id]
        assert caption in text
        assert not set(caption.split()) & set(COLOURS)  # the colour, which decides the fine type, is not said
        for entity in post.entities:
            if entity.text in LOOKALIKES:  # the shape, which decides the coarse type, is
                assert any(f"large {shape}" in caption for shape in EMBLEM_SHAPES[entity.coarse])
            elif entity.boxes is not None:
                assert f"{entity.text} logo" in caption


def test_same_seed_same_files(tmp_path):
    write_synthetic_benchmark(tmp_path / "a", posts=12, seed=9)
    write_synthetic_benchmark(tmp_path / "b", posts=12, seed=9)
    write_synthetic_benchmark(tmp_path / "c", posts=12, seed=10)
    same = [(tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
            for name in ("txt/train.txt", "knowledge.jsonl", "images/syn_000003.jpg", "xml/syn_000003.xml")]
    assert all(same)
    assert (tmp_path / "a" / "txt/train.txt").read_bytes() != (tmp_path / "c" / "txt/train.txt").read_bytes()
    write_synthetic_benchmark(tmp_path / "a", posts=6, seed=9)  # a smaller benchmark replaces the older one
    assert len(list((tmp_path / "a" / "images").iterdir())) == 6
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic_benchmark(tmp_path / "mine", posts=6)


def test_stats_and_gold_against_gold_through_the_cli(bench, tmp_path):
    stats = tmp_path / "stats.json"
    result = runner.invoke(app, ["data", "stats", "--dataset", str(bench), "--json", str(stats)])
    assert result.exit_code == 0, result.output
    numbers = json.loads(stats.read_text())
    test = load_split(bench, "test")
    assert numbers["test"]["tweets"] == len(test.posts)
    assert numbers["test"]["groundable"] == sum(e.boxes is not None for p in test.posts for e in p.entities)
    predictions = tmp_path / "gold.jsonl"
    by_post = gold_as_predictions(test.posts)
    predictions.write_text("".join(json.dumps(prediction_record(p, by_post[p.id])) + "\n" for p in test.posts))
    scores = tmp_path / "scores.json"
    result = runner.invoke(app, ["evaluate", str(bench / "txt" / "test.txt"), str(predictions), "--schema", "fmnerg",
                                 "--boxes", str(bench / "xml"), "--output", str(scores)])
    assert result.exit_code == 0, result.output
    report = json.loads(scores.read_text())
    flat = json.dumps(report)
    assert '"f1": 100.0' in flat and all(value == 100.0 for value in _f1s(report))


def _f1s(tree) -> list[float]:
    if isinstance(tree, dict):
        return [v for k, v in tree.items() if k == "f1"] + [x for v in tree.values() for x in _f1s(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in _f1s(v)]
    return []
