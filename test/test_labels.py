"""Label sets: the Cityscapes table against the official one, and lookup-table mapping."""

from __future__ import annotations

import numpy as np
import pytest

from semseg_ros.labels import CITYSCAPES_LABELS, IGNORE, LABEL_SETS, cityscapes_id_palette, get_label_set


def test_table_matches_cityscapesscripts() -> None:
    official = pytest.importorskip("cityscapesscripts.helpers.labels", reason="cityscapesscripts is not installed")
    ours = [tuple(lab) for lab in CITYSCAPES_LABELS]
    theirs = [(l.name, l.id, l.trainId, l.category, l.categoryId, l.hasInstances, l.ignoreInEval, tuple(l.color)) for l in official.labels]  # noqa: E741
    assert ours == theirs


def test_cityscapes19_maps_label_ids_to_train_ids_without_touching_the_input() -> None:
    s = get_label_set("cityscapes19")
    assert s.num_classes == 19 and s.classes[0] == "road" and s.classes[18] == "bicycle"
    label_ids = np.arange(256, dtype=np.uint8).reshape(16, 16)
    before = label_ids.copy()
    train_ids = s.map_cityscapes_ids(label_ids)
    np.testing.assert_array_equal(label_ids, before)
    expected = {lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0}
    for label_id in range(256):
        want = expected.get(label_id, IGNORE)
        assert train_ids.ravel()[label_id] == (IGNORE if want < 0 else want), label_id
    # Void never becomes a real class (the seed's in-place remapping turned it into "traffic light").
    assert s.map_cityscapes_ids(np.array([0, 1, 2, 3, 4, 5, 6])).tolist() == [IGNORE] * 7


def test_round_trip_train_ids_back_to_label_ids() -> None:
    s = get_label_set("cityscapes19")
    back = {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < IGNORE}
    for train_id in range(19):
        assert s.map_cityscapes_ids(np.array([back[train_id]]))[0] == train_id


def test_categories_and_road_sets() -> None:
    cats = get_label_set("categories")
    assert cats.classes == ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
    ids = np.array([7, 8, 11, 17, 21, 23, 24, 26, 0, 3])
    assert cats.map_cityscapes_ids(ids).tolist() == [0, 0, 1, 2, 3, 4, 5, 6, IGNORE, IGNORE]
    road = get_label_set("road")
    assert road.map_cityscapes_ids(np.array([7, 8, 26, 0])).tolist() == [1, 0, 0, IGNORE]


def test_palettes_and_unknown_names() -> None:
    assert tuple(cityscapes_id_palette()[26]) == (0, 0, 142)
    s = LABEL_SETS["cityscapes19"]
    assert s.colorize(np.array([[0, 255]])).tolist() == [[[128, 64, 128], [0, 0, 0]]]
    with pytest.raises(KeyError, match="unknown label set 'nope'"):
        get_label_set("nope")


def test_camvid_label_set_maps_cityscapes_and_groups_the_32_classes() -> None:
    from semseg_ros.labels import CAMVID32_COLORS, CITYSCAPES_ID, camvid32_color_lut

    camvid = get_label_set("camvid")
    assert camvid.classes == (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )
    assert camvid.colors[3] == (128, 64, 128) and camvid.colors[8] == (64, 0, 128)  # SegNet's Road and Car
    ids = np.array([CITYSCAPES_ID[n] for n in ("sky", "wall", "traffic light", "sidewalk", "truck", "rider", "person", "parking")])
    np.testing.assert_array_equal(camvid.map_cityscapes_ids(ids), [0, 1, 6, 4, 8, 10, 9, IGNORE])
    lut = camvid32_color_lut()
    assert len(lut) == len(CAMVID32_COLORS) == 32
    grouped = [sum(1 for v in lut.values() if v == i) for i in range(camvid.num_classes)]
    assert sum(grouped) == 31 and min(grouped) >= 1  # every original class but Void lands in one of the 11
    assert camvid.class_id("car") == camvid.class_id("Car") == 8
    assert camvid.category_ids() == [4, 1, 2, 0, 0, 3, 2, 1, 6, 5, 5]
