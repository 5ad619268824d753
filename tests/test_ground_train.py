"""ITM fine-tuning data and settings: examples from posts, threshold tuning, the schedule, presets."""

from __future__ import annotations

import pytest
from PIL import Image

from gemner.data import IssueLog
from gemner.data.types import Box, Entity, Post
from gemner.ground.config import PRESETS, GrounderConfig, GrounderTrainConfig, preset
from gemner.ground.itm import itm_text
from gemner.ground.train import examples_from_posts, linear_schedule, tune_threshold


def test_table8_template():
    assert itm_text("taylor swift", "musician") == "taylor swift is belong musician"


def test_paper_defaults():
    assert GrounderConfig().itm_model == "Salesforce/blip-itm-base-coco"
    assert GrounderConfig().sam_model == "facebook/sam-vit-base"
    assert GrounderConfig().threshold == 0.5
    assert GrounderTrainConfig().lr == 5e-5 and GrounderTrainConfig().epochs == 1
    assert PRESETS["lite"].sam_model == "nielsr/slimsam-50-uniform"
    assert PRESETS["weight-free"].segmenter == "region"
    assert preset("paper", threshold=0.3, segmenter=None).threshold == 0.3
    with pytest.raises(ValueError, match="unknown grounder preset"):
        preset("seem")


def test_examples_from_posts_labels_and_skips(tmp_path):
    good = tmp_path / "p1.jpg"
    Image.new("RGB", (20, 10), (200, 0, 0)).save(good)
    broken = tmp_path / "p2.jpg"
    broken.write_bytes(b"not a jpeg at all")
    boxed = Entity(0, 1, "Cleveland", "sports_team", "organization", (Box(0, 0, 5, 5),))
    unboxed = Entity(2, 3, "NBA", "sports_league", "organization", None)
    posts = [
        Post("p1", ["Cleveland", "wins", "NBA"], [boxed, unboxed], image=good),
        Post("p2", ["Cleveland"], [boxed], image=broken),
        Post("p3", ["Cleveland"], [boxed], image=None),
        Post("p4", ["nothing"], [], image=good),  # no entity: nothing to learn, not an issue
    ]
    log = IssueLog()
    items = examples_from_posts(posts, "type", log)
    assert [item.key for item in items] == ["p1"]
    assert items[0].queries == [("Cleveland", "sports_team", True), ("NBA", "sports_league", False)]
    assert {issue.post_id for issue in log.issues} == {"p2", "p3"}
    assert all(issue.action == "skipped post" for issue in log.issues)
    coarse = examples_from_posts(posts[:1], "coarse")
    assert coarse[0].queries[0] == ("Cleveland", "organization", True)


def test_tune_threshold_by_hand():
    # sorted P_T: 0.1(F) 0.3(T) 0.4(F) 0.7(T) 0.9(T): no cut gets all 5; 4/5 at 0.2 (0.1 | rest) and
    # at any cut in (0.4, 0.7], the paper's 0.5 among them: ties go to the cut nearest 0.5
    threshold, accuracy = tune_threshold([0.9, 0.1, 0.4, 0.7, 0.3], [True, False, False, True, True])
    assert accuracy == pytest.approx(4 / 5)
    assert threshold == 0.5
    threshold, accuracy = tune_threshold([0.9, 0.1, 0.35, 0.7, 0.3], [True, False, True, True, False])
    assert accuracy == 1.0 and threshold == pytest.approx(0.325)  # midway between 0.3 (F) and 0.35 (T)
    threshold, accuracy = tune_threshold([0.2, 0.25, 0.3], [False, False, True])
    assert accuracy == 1.0 and threshold == pytest.approx(0.275)
    assert tune_threshold([], []) == (0.5, 0.0)


def test_linear_schedule():
    assert linear_schedule(0, warmup=0, total=4) == 1.0
    assert linear_schedule(2, warmup=0, total=4) == 0.5
    assert linear_schedule(0, warmup=3, total=10) == pytest.approx(0.25)
    assert linear_schedule(3, warmup=3, total=10) == 1.0
    assert linear_schedule(10, warmup=3, total=10) == 0.0
