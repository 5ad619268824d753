"""The synthetic scenes: exact boxes, small objects, absent negatives, determinism."""

from __future__ import annotations

import numpy as np

from gemner.ground.synthetic import COLOURS, SceneSpec, make_scenes, vocabulary


def test_boxes_are_the_exact_extent_of_each_objects_pixels():
    for scene in make_scenes(20, seed=3):
        assert 2 <= len(scene.objects) <= 4
        for obj in scene.objects:
            ys, xs = np.nonzero(obj.mask)
            assert obj.box.to_list() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        union = sum(obj.mask.astype(int) for obj in scene.objects)
        assert union.max() == 1  # objects never overlap, so every box is fully visible


def test_shape_pixels_carry_their_named_colour():
    for scene in make_scenes(10, seed=4):
        pixels = np.asarray(scene.image, dtype=float)
        for obj in scene.objects:
            if obj.category != "shape":
                continue
            mean = pixels[obj.mask].mean(axis=0)
            assert np.abs(mean - COLOURS[obj.name.split(" ")[0]]).max() < 12


def test_small_objects_under_one_fiftieth_are_common():
    spec = SceneSpec()
    objects = [(obj, scene) for scene in make_scenes(100, seed=5, spec=spec) for obj in scene.objects]
    small = [obj for obj, scene in objects if obj.is_small(scene.image.size)]
    assert 0.2 < len(small) / len(objects) < 0.5
    assert all(obj.box.area < spec.size * spec.size / 50 for obj in small)


def test_queries_name_present_objects_and_absent_ones():
    names = dict(vocabulary())
    swaps = 0
    for scene in make_scenes(50, seed=6, spec=SceneSpec(negatives=3)):
        present = {obj.name for obj in scene.objects}
        for query in scene.queries:
            assert names[query.entity] == query.category
            assert query.present == (query.entity in present)
        absent = [q for q in scene.queries if not q.present]
        assert len(absent) == 3 and len({q.entity for q in absent}) == 3
        colours = {n.split(" ")[0] for n in present if names[n] == "shape"}
        shapes = {n.split(" ")[1] for n in present if names[n] == "shape"}
        swaps += sum(q.entity.split(" ")[0] in colours and q.entity.split(" ")[-1] in shapes for q in absent)
    assert swaps > 40  # attribute swaps are a large share of the negatives


def test_scenes_are_reproducible_from_their_seed():
    a, b = make_scenes(3, seed=7), make_scenes(3, seed=7)
    assert [o.box for s in a for o in s.objects] == [o.box for s in b for o in s.objects]
    assert np.array_equal(np.asarray(a[2].image), np.asarray(b[2].image))
    c = make_scenes(3, seed=8)
    assert [o.box for s in a for o in s.objects] != [o.box for s in c for o in s.objects]


def test_distinct_colour_variant():
    for scene in make_scenes(30, seed=9, spec=SceneSpec(distinct_colours=True)):
        colours = [o.name.split(" ")[0] if o.category == "shape" else o.name for o in scene.objects]
        assert len(colours) == len(set(colours))
