"""Bird's-eye-view pictures of labelled point clouds.

`render_bev` draws the bare points; `bev_picture` makes the annotated picture of the demo report:
a caption naming the frame, a metre grid with labelled distances and a scale bar, the ego marker
with its heading (REP 103: x forward, drawn up; y left, drawn left), cluster boxes labelled with
class and id, and a legend of the classes present.

The background is dark, as in RViz: the unlabelled points (behind the camera, outside its view,
hidden) stay a dim grey context, and a class colour too dark to read on it (Cityscapes' navy car,
truck, bus; CamVid's dark red building) is lightened towards white, hue kept, until it reaches
`MIN_CONTRAST` against the background (WCAG 2.1 contrast ratio; 3:1 is its minimum for graphical
objects, success criterion 1.4.11). The legend marks lightened colours with '*'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from semseg_ros.labels import IGNORE
from semseg_ros.pictures import CAPTION_HEIGHT, captioned

BACKGROUND = (16, 16, 16)
UNLABELLED = (48, 48, 48)  # points without a class: context, deliberately dim, darker than any class
GRID = (52, 52, 52)
GRID_TEXT = (150, 150, 150)
EGO = (0, 230, 255)  # cyan: no class colour of either shipped palette
BOX = (255, 255, 255)
MIN_CONTRAST = 3.0
GRID_STEP_M = 10.0
LEGEND_WIDTH = 190
LEGEND_ROW = 18
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class BevView:
    """The ground area shown: lidar-frame x (forward, metres) up the picture, y (left) to its left."""

    x_range: tuple[float, float] = (-20.0, 60.0)
    y_range: tuple[float, float] = (-30.0, 30.0)
    metres_per_pixel: float = 0.1

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the map."""
        return (
            round((self.x_range[1] - self.x_range[0]) / self.metres_per_pixel),
            round((self.y_range[1] - self.y_range[0]) / self.metres_per_pixel),
        )

    def pixels(self, x: NDArray[np.floating] | float, y: NDArray[np.floating] | float) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(row, col) of the map pixel holding lidar-frame point (x, y) in metres (may fall outside)."""
        rows = np.floor((self.x_range[1] - np.asarray(x, np.float64)) / self.metres_per_pixel).astype(np.int64)
        cols = np.floor((self.y_range[1] - np.asarray(y, np.float64)) / self.metres_per_pixel).astype(np.int64)
        return rows, cols


def render_bev(
    points: NDArray[np.floating],
    colors: NDArray[np.uint8],
    x_range: tuple[float, float] = (-20.0, 60.0),
    y_range: tuple[float, float] = (-30.0, 30.0),
    metres_per_pixel: float = 0.1,
    background: tuple[int, int, int] = (24, 24, 24),
) -> NDArray[np.uint8]:
    """An RGB top view of Nx3+ points (metres) in Nx3 uint8 colours: forward (+x) up, left (+y) left;
    higher points drawn on top; rows x cols = range / metres_per_pixel."""
    view = BevView(x_range, y_range, metres_per_pixel)
    image = np.empty((*view.shape, 3), np.uint8)
    image[:] = background
    _draw_points(image, view, np.asarray(points)[:, :3], np.asarray(colors))
    return image


def _draw_points(image: NDArray[np.uint8], view: BevView, xyz: NDArray[np.floating], colors: NDArray[np.uint8]) -> None:
    height, width = view.shape
    rows, cols = view.pixels(xyz[:, 0], xyz[:, 1])
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width) & np.isfinite(xyz).all(axis=1)
    order = np.argsort(xyz[inside, 2], kind="stable")
    image[rows[inside][order], cols[inside][order]] = colors[inside][order]


def relative_luminance(rgb: Sequence[int]) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour (0-255 per channel): 0 black .. 1 white."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(linear @ np.array([0.2126, 0.7152, 0.0722]))


def contrast_ratio(a: Sequence[int], b: Sequence[int]) -> float:
    """WCAG 2.1 contrast ratio (L_light + 0.05) / (L_dark + 0.05), from 1 (same) to 21 (black on white)."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def readable(color: Sequence[int], background: Sequence[int] = BACKGROUND, minimum: float = MIN_CONTRAST) -> tuple[int, int, int]:
    """`color` itself when its contrast ratio against a dark `background` reaches `minimum`, else the
    least blend towards white that does (hue kept)."""
    base = np.asarray(color, np.float64)
    for step in range(101):
        blended = tuple(int(v) for v in np.round(base + (255.0 - base) * step / 100))
        if contrast_ratio(blended, background) >= minimum:
            return (blended[0], blended[1], blended[2])
    return (255, 255, 255)


@dataclass(frozen=True)
class BevPicture:
    """An annotated top view: `image` (HxWx3 RGB uint8), the class names its legend lists, in class-id
    order, and where the map's pixel (0, 0) lies in `image` (`map_origin`, (row, col))."""

    image: NDArray[np.uint8]
    legend: tuple[str, ...]
    map_origin: tuple[int, int]


def bev_picture(
    points: NDArray[np.floating],
    labels: NDArray[np.integer],
    names: Sequence[str],
    colors: Sequence[Sequence[int]],
    caption: str,
    clusters: NDArray[np.integer] | None = None,
    view: BevView | None = None,
) -> BevPicture:
    """The report's bird's-eye view of one labelled cloud.

    points: Nx3+ lidar-frame metres; labels: N class ids (255 = unlabelled); names, colors: the
    model's class names and RGB palette; clusters: N cluster ids (-1 = none), boxed and labelled
    '<majority class> <id>'; caption: which frame this is, written above the map. The legend lists
    the classes of the labelled points inside the view, nothing else.
    """
    view = view or BevView()
    xyz = np.asarray(points, np.float64)[:, :3]
    labels = np.asarray(labels).astype(np.int64)
    drawn = [readable(c) for c in colors]
    lut = np.array([*drawn, *[UNLABELLED] * (256 - len(drawn))], np.uint8)
    height, width = view.shape
    bev = np.empty((height, width, 3), np.uint8)
    bev[:] = BACKGROUND
    _draw_grid(bev, view)
    _draw_points(bev, view, xyz, lut[np.clip(labels, 0, 255)])
    if clusters is not None:
        _draw_boxes(bev, view, xyz, labels, np.asarray(clusters), names)
    _draw_ego(bev, view)
    _draw_scale_bar(bev, view)

    rows, cols = view.pixels(xyz[:, 0], xyz[:, 1])
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width) & np.isfinite(xyz).all(axis=1)
    present = sorted(int(c) for c in np.unique(labels[inside]) if 0 <= c < len(names))
    legend = _legend(height, [(names[c], drawn[c], drawn[c] != tuple(colors[c])) for c in present], bool((labels[inside] == IGNORE).any()))
    picture = np.concatenate([bev, legend], axis=1)
    picture = captioned(picture, caption)
    return BevPicture(picture, tuple(names[c] for c in present), (CAPTION_HEIGHT, 0))


def _text(image: NDArray[np.uint8], text: str, origin: tuple[int, int], color: Sequence[int], scale: float = 0.4) -> None:
    """Text with a dark outline, readable over points."""
    cv2.putText(image, text, origin, FONT, scale, BACKGROUND, 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, FONT, scale, tuple(int(v) for v in color), 1, cv2.LINE_AA)


def _draw_grid(image: NDArray[np.uint8], view: BevView) -> None:
    """Lines every GRID_STEP_M metres; forward distances at the left edge, lateral ones at the top."""
    height, width = view.shape
    for x in np.arange(np.ceil(view.x_range[0] / GRID_STEP_M), np.floor(view.x_range[1] / GRID_STEP_M) + 1) * GRID_STEP_M:
        row = int(view.pixels(x, 0.0)[0])
        if 0 <= row < height:
            image[row, :] = GRID
            _text(image, f"x {x:+.0f} m", (3, row - 3), GRID_TEXT)
    for y in np.arange(np.ceil(view.y_range[0] / GRID_STEP_M), np.floor(view.y_range[1] / GRID_STEP_M) + 1) * GRID_STEP_M:
        col = int(view.pixels(0.0, y)[1])
        if 0 <= col < width:
            image[:, col] = GRID
            _text(image, f"y {y:+.0f}", (col + 3, 14), GRID_TEXT)


def _draw_scale_bar(image: NDArray[np.uint8], view: BevView) -> None:
    """A GRID_STEP_M-metre bar in the bottom right corner."""
    height, width = view.shape
    length = round(GRID_STEP_M / view.metres_per_pixel)
    right, row = width - 12, height - 12
    cv2.line(image, (right - length, row), (right, row), BOX, 2)
    for col in (right - length, right):
        cv2.line(image, (col, row - 5), (col, row + 5), BOX, 2)
    _text(image, f"{GRID_STEP_M:.0f} m", (right - length // 2 - 14, row - 9), BOX)


EGO_TIP_M, EGO_TAIL_M, EGO_HALF_WIDTH_M = 3.0, -1.0, 1.2


def _draw_ego(image: NDArray[np.uint8], view: BevView) -> None:
    """A filled arrowhead at the lidar origin pointing along +x (the heading), with 'ego' beside it."""
    corners = [(EGO_TIP_M, 0.0), (EGO_TAIL_M, EGO_HALF_WIDTH_M), (EGO_TAIL_M, -EGO_HALF_WIDTH_M)]
    polygon = np.array([[int(view.pixels(x, y)[1]), int(view.pixels(x, y)[0])] for x, y in corners], np.int32)
    cv2.fillPoly(image, [polygon], EGO)
    row, col = view.pixels(0.0, -EGO_HALF_WIDTH_M)
    _text(image, "ego, x fwd", (int(col) + 4, int(row) + 4), EGO)


def _draw_boxes(
    image: NDArray[np.uint8],
    view: BevView,
    xyz: NDArray[np.floating],
    labels: NDArray[np.integer],
    clusters: NDArray[np.integer],
    names: Sequence[str],
) -> list[tuple[int, int, int, int]]:
    """An axis-aligned box around each cluster's points, labelled with its majority class and id (each label
    above or below its box, stacked outwards: the first place no earlier label covers); returns the
    labels' rectangles (x0, y0, x1, y1) in pixels."""
    placed: list[tuple[int, int, int, int]] = []  # label rectangles drawn so far: x0, y0, x1, y1
    for cluster_id in np.unique(clusters[clusters >= 0]):
        members = clusters == cluster_id
        points, classes = xyz[members], labels[members]
        classes = classes[(classes >= 0) & (classes < len(names))]
        name = names[int(np.bincount(classes).argmax())] if len(classes) else "?"
        top, left = view.pixels(points[:, 0].max(), points[:, 1].max())
        bottom, right = view.pixels(points[:, 0].min(), points[:, 1].min())
        cv2.rectangle(image, (int(left) - 1, int(top) - 1), (int(right) + 1, int(bottom) + 1), BOX, 1)
        text = f"{name} {int(cluster_id)}"
        (w, h), _ = cv2.getTextSize(text, FONT, 0.38, 1)
        step = h + 6  # stacked further out where neighbours' labels are already drawn
        candidates = [
            (x, y) for k in range(6) for x, y in ((int(left), int(top) - 4 - k * step), (int(left), int(bottom) + h + 4 + k * step))
        ]
        rects = [(x, y - h - 2, x + w, y + 2) for x, y in candidates]
        free = [i for i, r in enumerate(rects) if not any(r[0] < q[2] and q[0] < r[2] and r[1] < q[3] and q[1] < r[3] for q in placed)]
        choice = free[0] if free else 0
        placed.append(rects[choice])
        _text(image, text, candidates[choice], BOX, 0.38)
    return placed


def _legend(height: int, entries: list[tuple[str, tuple[int, int, int], bool]], unlabelled: bool) -> NDArray[np.uint8]:
    """The legend panel: a swatch and the name of each (name, drawn colour, lightened) entry."""
    panel = np.empty((height, LEGEND_WIDTH, 3), np.uint8)
    panel[:] = BACKGROUND
    panel[:, 0] = GRID
    _text(panel, "classes", (10, 20), (255, 255, 255), 0.5)
    row = 34
    rows = [(f"{name}{' *' if lightened else ''}", color) for name, color, lightened in entries]
    if unlabelled:
        rows.append(("unlabelled", UNLABELLED))
    for name, color in rows:
        panel[row : row + 12, 10:24] = color
        _text(panel, name, (30, row + 11), (230, 230, 230))
        row += LEGEND_ROW
    row += 8
    panel[row : row + 12, 10:24] = EGO
    _text(panel, "ego (lidar origin)", (30, row + 11), (230, 230, 230))
    notes = [f"grid {GRID_STEP_M:.0f} m, x forward up,", "y left to the left"]
    if any(lightened for _, _, lightened in entries):
        notes.append(f"* lightened to {MIN_CONTRAST:g}:1 contrast")
    for index, note in enumerate(notes):
        _text(panel, note, (10, height - 12 - LEGEND_ROW * (len(notes) - 1 - index)), GRID_TEXT, 0.38)
    return panel
