"""The shipped benchmarks load offline and reproduce the papers' Table 4 to the unit."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gemner.data import DATASETS, FMNERG_SCHEMA, GMNER_SCHEMA, load_dataset, load_upstream
from gemner.data.convert import convert_upstream
from gemner.data.issues import IssueLog
from gemner.data.schema import bio_vocabulary
from gemner.data.stats import split_stats
from gemner.data.voc import read_boxes
from gemner.paths import data_dir

TABLE_4 = {
    # split: (tweets, entities, groundable, boxes)
    "gmner": {"train": (7000, 11782, 4694, 5680), "dev": (1500, 2453, 986, 1166), "test": (1500, 2543, 1036, 1244)},
    "fmnerg": {"train": (7000, 11779, 4733, 5723), "dev": (1500, 2450, 991, 1171), "test": (1500, 2543, 1046, 1254)},
}
TABLE_4["gmner-v2"] = TABLE_4["fmnerg"]  # FMNERG is built on v2.0: same spans and boxes

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize("name", sorted(DATASETS))
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_statistics_match_table_4(name: str, split: str) -> None:
    stats = split_stats(load_dataset(name, split).posts)
    assert (stats.tweets, stats.entities, stats.groundable, stats.boxes) == TABLE_4[name][split]


def test_schemas_are_the_published_label_sets() -> None:
    assert GMNER_SCHEMA.labels == ("PER", "ORG", "LOC", "OTHER") and not GMNER_SCHEMA.hierarchical
    assert len(FMNERG_SCHEMA.labels) == 51 and len(FMNERG_SCHEMA.coarse_labels) == 8
    assert FMNERG_SCHEMA.coarse_of["sports_team"] == "organization"
    assert FMNERG_SCHEMA.fine_labels_of("event") == ("event_other", "festival", "sports_event")
    assert FMNERG_SCHEMA.canonical("common_person") == "person_other"
    assert len(FMNERG_SCHEMA.tags) == 1 + 2 * 51 and FMNERG_SCHEMA.coarse_tags[:3] == ("O", "B-location", "I-location")
    assert bio_vocabulary(["A"]) == ("O", "B-A", "I-A")


def test_fmnerg_entities_share_gmner_v2_spans_and_coarse_follows_fine() -> None:
    fine = load_dataset("fmnerg", "dev").posts
    coarse = load_dataset("gmner-v2", "dev").posts
    to_gmner = {"person": "PER", "organization": "ORG", "location": "LOC", "building": "LOC"}
    for f, c in zip(fine, coarse, strict=True):
        assert f.tokens == c.tokens
        assert [e.span for e in f.entities] == [e.span for e in c.entities]
        for fe, ce in zip(f.entities, c.entities, strict=True):
            assert fe.coarse == FMNERG_SCHEMA.coarse_of[fe.type]
            assert to_gmner.get(fe.coarse, "OTHER") == ce.type
            assert fe.boxes == ce.boxes


def test_every_fine_label_occurs_in_train() -> None:
    types = split_stats(load_dataset("fmnerg", "train").posts).types
    assert set(types) == set(FMNERG_SCHEMA.labels)


def test_boxes_join_entities_by_name_and_carry_image_size() -> None:
    posts = {p.id: p for p in load_dataset("gmner-v2", "train").posts}
    annotations = read_boxes(data_dir() / "gmner-v2" / "boxes.jsonl.gz", IssueLog())
    # data/README §3: one entity may have several boxes; all objects with its name are its boxes
    multi = [e for p in posts.values() for e in p.entities if e.boxes and len(e.boxes) > 1]
    assert multi
    checked = 0
    for post in posts.values():
        annotation = annotations.get(post.id)
        if annotation is None:
            assert not any(e.groundable for e in post.entities)
            continue
        assert post.image_size == annotation.size
        for entity in post.entities:
            named = [box for name, box in annotation.objects if name == entity.text]
            inside = all(0 <= b.x1 < b.x2 <= annotation.width and 0 <= b.y1 < b.y2 <= annotation.height
                         for b in named)
            if inside:  # boxes reaching outside the image are clipped (tested with the bad input)
                assert entity.boxes == (tuple(named) or None), (post.id, entity.text)
                checked += entity.groundable
    assert checked >= 4600  # nearly all of the 4,733 groundable train entities


def _write_upstream(root: Path) -> tuple[Path, Path]:
    txt, xml = root / "txt", root / "xml"
    txt.mkdir()
    xml.mkdir()
    for split in ("train", "dev", "test"):
        (txt / f"{split}.txt").write_text(
            "IMGID:1\nTaylor\tB-PER\nSwift\tI-PER\nsings\tO\n\nIMGID:2\nParis\tB-LOC\n\n", encoding="utf-8")
    (xml / "1.xml").write_text(
        "<annotation><size><width>100</width><height>80</height><depth>3</depth></size>"
        "<object><name>Taylor Swift</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>50</xmax><ymax>60</ymax>"
        "</bndbox></object></annotation>", encoding="utf-8")
    return txt, xml


def test_upstream_layout_loads_from_any_path_with_images(tmp_path: Path) -> None:
    txt, xml = _write_upstream(tmp_path)
    images = tmp_path / "images" / "twitter2015_images"
    images.mkdir(parents=True)
    (images / "1.jpg").write_bytes(b"not decoded here")
    dataset = load_upstream(txt, "dev", GMNER_SCHEMA, xml_dir=xml, images_dir=tmp_path / "images")
    first, second = dataset.posts
    assert first.entities[0].boxes == ((1, 2, 50, 60),) and first.image_size == (100, 80)
    assert first.image == images / "1.jpg" and second.image is None
    assert second.entities[0].boxes is None


def test_converter_round_trips_the_upstream_layout(tmp_path: Path) -> None:
    txt, xml = _write_upstream(tmp_path)
    out = tmp_path / "compact"
    assert not convert_upstream(txt, out, xml).issues
    assert gzip.decompress((out / "dev.txt.gz").read_bytes()) == (txt / "dev.txt").read_bytes()
    from gemner.data import load_conll_split

    upstream = load_upstream(txt, "dev", GMNER_SCHEMA, xml_dir=xml).posts
    compact = load_conll_split(out / "dev.txt.gz", GMNER_SCHEMA, boxes=out / "boxes.jsonl.gz").posts
    assert [(p.id, p.tokens, p.entities, p.image_size) for p in upstream] == [
        (p.id, p.tokens, p.entities, p.image_size) for p in compact]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not beside the checkout")
@pytest.mark.parametrize(("name", "txt", "xml"), [
    ("gmner", "gmner/Twitter10000/txt", "gmner/Twitter10000/xml"),
    ("fmnerg", "fmnerg/txt_fine", "gmner/Twitter10000_v2.0/xml"),
])
def test_shipped_data_equals_upstream(name: str, txt: str, xml: str) -> None:
    spec = DATASETS[name]
    shipped = load_dataset(name, "test").posts
    upstream = load_upstream(SHARED / txt, "test", spec.schema, xml_dir=SHARED / xml).posts
    assert [(p.id, p.tokens, p.entities, p.image_size) for p in shipped] == [
        (p.id, p.tokens, p.entities, p.image_size) for p in upstream]
