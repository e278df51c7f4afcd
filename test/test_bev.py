"""The report's bird's-eye view: legend of the classes present, ego marker and heading, grid and scale,
cluster boxes, and class colours readable on the background."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semseg_ros.fusion.bev import (
    BACKGROUND,
    BOX,
    EGO,
    GRID,
    MIN_CONTRAST,
    UNLABELLED,
    BevView,
    bev_picture,
    contrast_ratio,
    readable,
)
from semseg_ros.labels import IGNORE, get_label_set
from semseg_ros.pictures import CAPTION_HEIGHT

CITYSCAPES = get_label_set("cityscapes19")
VIEW = BevView()
SWATCH_PIXELS = 12 * 14


def map_pixel(picture, x: float, y: float) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The picture's pixel holding lidar-frame point (x, y)."""
    row, col = VIEW.pixels(x, y)
    return picture.image[picture.map_origin[0] + int(row), picture.map_origin[1] + int(col)]


def legend_panel(picture) -> np.ndarray:  # type: ignore[no-untyped-def]
    return picture.image[CAPTION_HEIGHT:, VIEW.shape[1] :]


def count_colour(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((image == np.asarray(colour, np.uint8)).all(axis=-1).sum())


def test_wcag_contrast_ratio_matches_the_standards_examples() -> None:
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((120, 120, 120), (120, 120, 120)) == pytest.approx(1.0)
    assert contrast_ratio((0x77, 0x77, 0x77), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # WebAIM's #777 on white


@pytest.mark.parametrize("name", ["cityscapes19", "camvid"])
def test_every_class_colour_of_the_shipped_label_sets_is_readable_on_the_background(name: str) -> None:
    for colour in get_label_set(name).colors:
        drawn = readable(colour)
        assert contrast_ratio(drawn, BACKGROUND) >= MIN_CONTRAST, (colour, drawn)
        assert contrast_ratio(drawn, UNLABELLED) >= 2.0, (colour, drawn)  # told apart from the unlabelled grey
        if contrast_ratio(colour, BACKGROUND) >= MIN_CONTRAST:
            assert drawn == tuple(colour)  # colours already readable are the palette's own


def test_navy_car_points_are_lightened_and_stay_blue() -> None:
    car = CITYSCAPES.classes.index("car")
    navy = CITYSCAPES.colors[car]
    assert contrast_ratio(navy, BACKGROUND) < 1.5  # the problem: (0, 0, 142) on a dark background
    points = np.array([[20.0, 5.0, 0.5]], np.float32)
    picture = bev_picture(points, np.array([car], np.uint8), CITYSCAPES.classes, CITYSCAPES.colors, "frame 0")
    drawn = map_pixel(picture, 20.0, 5.0)
    background = map_pixel(picture, 21.5, 5.5)
    assert contrast_ratio(tuple(drawn), tuple(background)) >= MIN_CONTRAST
    assert drawn[2] > drawn[0] and drawn[2] > drawn[1]  # still blue


@settings(max_examples=25, deadline=None)
@given(
    present=st.sets(st.integers(0, CITYSCAPES.num_classes - 1), max_size=8),
    outside=st.sets(st.integers(0, CITYSCAPES.num_classes - 1), max_size=4),
    unlabelled=st.booleans(),
)
def test_legend_lists_exactly_the_classes_of_the_points_in_view(present: set[int], outside: set[int], unlabelled: bool) -> None:
    rng = np.random.default_rng(len(present))
    points, labels = [], []
    for class_id in present:  # a few points each, inside the view
        points += [[rng.uniform(5, 50), rng.uniform(-25, 25), 0.0] for _ in range(3)]
        labels += [class_id] * 3
    for class_id in outside:  # beyond the view: not in the legend
        points.append([200.0, 0.0, 0.0])
        labels.append(class_id)
    if unlabelled:
        points.append([-10.0, 3.0, 0.0])
        labels.append(IGNORE)
    xyz = np.array(points, np.float32).reshape(-1, 3)
    picture = bev_picture(xyz, np.array(labels, np.uint8), CITYSCAPES.classes, CITYSCAPES.colors, "frame 3")
    assert picture.legend == tuple(CITYSCAPES.classes[c] for c in sorted(present))
    panel = legend_panel(picture)
    for class_id in range(CITYSCAPES.num_classes):
        swatch = count_colour(panel, readable(CITYSCAPES.colors[class_id]))
        assert (swatch >= SWATCH_PIXELS) == (class_id in present), CITYSCAPES.classes[class_id]


def test_ego_marker_sits_at_the_lidar_origin_and_points_forward() -> None:
    # Points under the marker: the marker is drawn over them.
    road = CITYSCAPES.classes.index("road")
    xyz = np.array([[x, y, 0.0] for x in np.arange(-3, 3, 0.1) for y in np.arange(-3, 3, 0.1)], np.float32)
    picture = bev_picture(xyz, np.full(len(xyz), road, np.uint8), CITYSCAPES.classes, CITYSCAPES.colors, "frame 0")
    assert tuple(map_pixel(picture, 0.5, 0.0)) == EGO
    assert tuple(map_pixel(picture, 2.5, 0.0)) == EGO  # the tip: 2.5 m ahead (up in the picture)
    assert tuple(map_pixel(picture, -2.5, 0.0)) != EGO  # nothing 2.5 m behind
    assert tuple(map_pixel(picture, 2.5, 0.6)) != EGO  # narrow at the front: a heading, not a blob
    assert tuple(map_pixel(picture, -0.9, 1.0)) == EGO and tuple(map_pixel(picture, -0.9, -1.0)) == EGO  # wide at the back
    assert count_colour(legend_panel(picture), EGO) >= SWATCH_PIXELS  # and it has its legend entry


def test_grid_lines_every_ten_metres_and_a_ten_metre_scale_bar() -> None:
    picture = bev_picture(np.zeros((0, 3), np.float32), np.zeros(0, np.uint8), CITYSCAPES.classes, CITYSCAPES.colors, "frame 0")
    height, width = VIEW.shape
    bev = picture.image[CAPTION_HEIGHT : CAPTION_HEIGHT + height, :width]
    for x in (-10, 10, 20, 30, 40, 50):
        row = int(VIEW.pixels(float(x), 0.0)[0])
        assert count_colour(bev[row : row + 1], GRID) > width // 2, x
    for y in (-20, -10, 10, 20):
        col = int(VIEW.pixels(0.0, float(y))[1])
        assert count_colour(bev[:, col : col + 1], GRID) > height // 2, y
    bar_row = bev[height - 12]
    white = np.flatnonzero((bar_row == np.asarray(BOX, np.uint8)).all(axis=-1))
    assert white.max() - white.min() == pytest.approx(10.0 / VIEW.metres_per_pixel, abs=2)


def test_cluster_boxes_enclose_their_points() -> None:
    car = CITYSCAPES.classes.index("car")
    xyz = np.array([[x, y, 0.5] for x in (14.0, 16.0, 18.0) for y in (-4.0, -2.5)], np.float32)
    picture = bev_picture(
        xyz, np.full(len(xyz), car, np.uint8), CITYSCAPES.classes, CITYSCAPES.colors, "frame 0", clusters=np.full(len(xyz), 7)
    )
    top, left = VIEW.pixels(18.0, -2.5)
    bottom, right = VIEW.pixels(14.0, -4.0)
    r0, c0 = picture.map_origin
    for row, col in ((top - 1, left - 1), (bottom + 1, right + 1), (top - 1, right + 1), (bottom + 1, left - 1)):
        assert tuple(picture.image[r0 + int(row), c0 + int(col)]) == BOX
    label_band = picture.image[r0 + int(top) - 16 : r0 + int(top) - 2, c0 + int(left) : c0 + int(left) + 40]
    assert int((label_band.min(axis=-1) > 200).sum()) > 10  # "car 7" written above the box, in white


def test_cluster_labels_of_neighbouring_boxes_do_not_cover_each_other() -> None:
    """The README's picture had "car 4" over "car 12" and "car 19)" where two labels met (a new user's review)."""
    from semseg_ros.fusion.bev import _draw_boxes

    rng = np.random.default_rng(1)
    centres = [(20.0, 5.0), (20.5, 5.2), (21.0, 4.8), (30.0, -3.0)]  # three boxes nearly on top of each other
    xyz = np.concatenate([np.array([x, y, 0.0]) + rng.normal(0, 0.3, (30, 3)) for x, y in centres])
    clusters = np.repeat(np.arange(4), 30)
    image = np.zeros((*VIEW.shape, 3), np.uint8)
    rects = _draw_boxes(image, VIEW, xyz, np.full(120, 13), clusters, get_label_set("cityscapes19").classes)
    assert len(rects) == 4
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
