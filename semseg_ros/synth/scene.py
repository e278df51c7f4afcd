"""The synthetic street world: a procedural, seeded 3D scene with labelled triangles.

World frame: x along the road (the ego drives towards +x), y to the left, z up, ground at z = 0.
Every triangle carries a Cityscapes label id, an instance id (0 for stuff), a material and a
colour, so one ray cast yields image colour, reflectance and ground truth at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from semseg_ros.labels import CITYSCAPES_ID
from semseg_ros.synth.geometry import Mesh, box, cylinder, ellipsoid, merge, quad


@dataclass(frozen=True)
class Material:
    name: str
    color: tuple[float, float, float]  # linear-ish RGB in [0, 1]
    texture_scale: float  # texture features per metre
    texture_amplitude: float  # relative albedo variation
    reflectance: float  # lidar reflectance in [0, 1]


MATERIALS: tuple[Material, ...] = (
    Material("asphalt", (0.30, 0.30, 0.32), 1.5, 0.35, 0.12),
    Material("paint", (0.88, 0.88, 0.85), 3.0, 0.12, 0.60),
    Material("concrete", (0.62, 0.58, 0.55), 2.0, 0.25, 0.25),
    Material("grass", (0.42, 0.55, 0.22), 1.2, 0.45, 0.35),
    Material("foliage", (0.20, 0.36, 0.10), 2.5, 0.60, 0.45),
    Material("bark", (0.35, 0.25, 0.18), 4.0, 0.30, 0.30),
    Material("facade", (0.65, 0.58, 0.50), 0.8, 0.20, 0.30),
    Material("wall", (0.55, 0.55, 0.60), 1.5, 0.25, 0.28),
    Material("fence", (0.50, 0.42, 0.34), 6.0, 0.35, 0.22),
    Material("metal", (0.50, 0.50, 0.52), 5.0, 0.10, 0.50),
    Material("sign", (0.90, 0.80, 0.10), 1.0, 0.05, 0.90),
    Material("housing", (0.12, 0.12, 0.10), 2.0, 0.10, 0.30),
    Material("car_paint", (0.50, 0.50, 0.50), 0.5, 0.08, 0.35),
    Material("glass", (0.10, 0.12, 0.16), 0.5, 0.10, 0.10),
    Material("tyre", (0.05, 0.05, 0.05), 3.0, 0.20, 0.05),
    Material("cloth", (0.40, 0.30, 0.30), 3.0, 0.30, 0.25),
    Material("skin", (0.75, 0.56, 0.45), 2.0, 0.10, 0.30),
)
MATERIAL_ID = {m.name: i for i, m in enumerate(MATERIALS)}

FACADE_COLORS = ((0.66, 0.56, 0.44), (0.72, 0.70, 0.64), (0.52, 0.32, 0.26), (0.80, 0.74, 0.58), (0.46, 0.46, 0.52))
SIGN_COLORS = ((0.90, 0.80, 0.10), (0.85, 0.85, 0.85), (0.10, 0.25, 0.70), (0.80, 0.10, 0.10))
LANE_WIDTH = 3.5
SIDEWALK_WIDTH = 3.0
CURB_HEIGHT = 0.15
VERGE_WIDTH = 3.5
VELODYNE_HEIGHT = 1.73


@dataclass(frozen=True)
class RoadLayout:
    """Cross-section of the street; the ego drives in the rightmost lane."""

    lanes_per_direction: int = 1
    markings: bool = True
    parking: bool = True

    @property
    def half_width(self) -> float:
        return self.lanes_per_direction * LANE_WIDTH + (2.2 if self.parking else 0.3)

    @property
    def ego_lane(self) -> tuple[float, float]:
        """y range of the ego's (rightmost) lane."""
        edge = self.lanes_per_direction * LANE_WIDTH
        return (-edge, -edge + LANE_WIDTH)


@dataclass
class SceneMesh:
    """Triangles with per-face attributes, in world coordinates."""

    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    label: NDArray[np.uint8]
    instance: NDArray[np.uint16]
    material: NDArray[np.uint8]
    color: NDArray[np.float32]

    @staticmethod
    def concat(parts: list[SceneMesh]) -> SceneMesh:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return SceneMesh(
            np.concatenate([p.vertices for p in parts]),
            np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.instance for p in parts]),
            np.concatenate([p.material for p in parts]),
            np.concatenate([p.color for p in parts]),
        )

    def moved(self, offset: NDArray[np.float64]) -> SceneMesh:
        return SceneMesh(self.vertices + offset, self.faces, self.label, self.instance, self.material, self.color)


def _part(mesh: Mesh, label: str, material: str, color: tuple[float, float, float] | None = None, instance: int = 0) -> SceneMesh:
    n = len(mesh.faces)
    rgb = MATERIALS[MATERIAL_ID[material]].color if color is None else color
    return SceneMesh(
        mesh.vertices,
        mesh.faces,
        np.full(n, CITYSCAPES_ID[label], np.uint8),
        np.full(n, instance, np.uint16),
        np.full(n, MATERIAL_ID[material], np.uint8),
        np.tile(np.asarray(rgb, np.float32), (n, 1)),
    )


@dataclass
class Agent:
    """A moving (or parked) thing: its mesh in local coordinates and straight-line motion along x."""

    mesh: SceneMesh
    x0: float
    y: float
    speed: float  # m/s along +x (negative: oncoming)

    def at(self, t: float) -> SceneMesh:
        return self.mesh.moved(np.array([self.x0 + self.speed * t, self.y, 0.0]))


@dataclass
class World:
    """A seeded street: static geometry, agents, lighting and the ego trajectory."""

    seed: int
    layout: RoadLayout
    static: SceneMesh
    agents: list[Agent]
    sun: NDArray[np.float64]  # unit vector towards the sun
    ego_speed: float = 10.0
    ego_start: float = 0.0
    instance_classes: dict[int, int] = field(default_factory=dict)

    @property
    def ego_y(self) -> float:
        lo, hi = self.layout.ego_lane
        return (lo + hi) / 2

    def ego_position(self, t: float) -> NDArray[np.float64]:
        """World position of the Velodyne at time t (the sensor frame has no rotation w.r.t. the world)."""
        return np.array([self.ego_start + self.ego_speed * t, self.ego_y, VELODYNE_HEIGHT])

    def scene_at(self, t: float) -> SceneMesh:
        return SceneMesh.concat([self.static] + [a.at(t) for a in self.agents])


class _Builder:
    def __init__(self, seed: int, layout: RoadLayout, x_range: tuple[float, float]):
        self.rng = np.random.default_rng(seed)
        self.layout = layout
        self.x0, self.x1 = x_range
        self.static: list[SceneMesh] = []
        self.agents: list[Agent] = []
        self.next_instance = 1
        self.instance_classes: dict[int, int] = {}

    def instance(self, label: str) -> int:
        iid = self.next_instance
        self.next_instance += 1
        self.instance_classes[iid] = CITYSCAPES_ID[label]
        return iid

    # ------------------------------------------------------------- ground
    def ground(self) -> None:
        lay, x0, x1 = self.layout, self.x0, self.x1
        hw = lay.half_width
        self.static.append(_part(quad(x0 - 600, x1 + 600, -600, 600, -0.05), "terrain", "grass"))
        self.static.append(_part(quad(x0, x1, -hw, hw, 0.0), "road", "asphalt"))
        for side in (-1, 1):
            y_mid = side * (hw + SIDEWALK_WIDTH / 2)
            self.static.append(
                _part(box((x1 - x0, SIDEWALK_WIDTH, CURB_HEIGHT), ((x0 + x1) / 2, y_mid, CURB_HEIGHT / 2)), "sidewalk", "concrete")
            )
            y_in, y_out = sorted((side * (hw + SIDEWALK_WIDTH), side * (hw + SIDEWALK_WIDTH + VERGE_WIDTH)))
            self.static.append(_part(quad(x0, x1, y_in, y_out, 0.02), "terrain", "grass"))
        if lay.markings:
            self.markings()

    def markings(self) -> None:
        lay, x0, x1 = self.layout, self.x0, self.x1
        edge = lay.lanes_per_direction * LANE_WIDTH
        lines: list[Mesh] = [quad(x0, x1, s * edge - 0.075, s * edge + 0.075, 0.01) for s in (-1, 1)]
        dashes = np.arange(x0, x1, 9.0)
        if lay.lanes_per_direction == 1:
            lines += [quad(d, d + 3.0, -0.075, 0.075, 0.01) for d in dashes]
        else:
            lines += [quad(x0, x1, -0.2, -0.05, 0.01), quad(x0, x1, 0.05, 0.2, 0.01)]
            for k in range(1, lay.lanes_per_direction):
                lines += [quad(d, d + 3.0, s * k * LANE_WIDTH - 0.075, s * k * LANE_WIDTH + 0.075, 0.01) for d in dashes for s in (-1, 1)]
        self.static.append(_part(merge(lines), "road", "paint"))

    # ------------------------------------------------------------- roadside
    def roadside(self) -> None:
        rng, hw = self.rng, self.layout.half_width
        for side in (-1, 1):
            # Buildings, with gaps closed by walls or fences.
            x = self.x0 - rng.uniform(0, 10)
            back = hw + SIDEWALK_WIDTH + VERGE_WIDTH
            while x < self.x1:
                width = rng.uniform(8, 28)
                if rng.random() < 0.8:
                    depth, height = rng.uniform(8, 14), rng.uniform(6, 24)
                    setback = back + rng.uniform(0, 2.5)
                    r, g, b = FACADE_COLORS[rng.integers(len(FACADE_COLORS))]
                    shade = rng.uniform(0.85, 1.1)
                    self.static.append(
                        _part(
                            box((width, depth, height), (x + width / 2, side * (setback + depth / 2), height / 2)),
                            "building",
                            "facade",
                            (r * shade, g * shade, b * shade),
                        )
                    )
                else:
                    label, material, height = (
                        ("wall", "wall", rng.uniform(1.2, 2.5)) if rng.random() < 0.5 else ("fence", "fence", rng.uniform(1.0, 1.8))
                    )
                    self.static.append(_part(box((width, 0.2, height), (x + width / 2, side * (back + 0.5), height / 2)), label, material))
                x += width + rng.uniform(0.5, 4)
            # Trees and hedges on the verge.
            x = self.x0 + rng.uniform(0, 8)
            verge = hw + SIDEWALK_WIDTH + VERGE_WIDTH / 2
            while x < self.x1:
                y = side * (verge + rng.uniform(-0.8, 0.8))
                if rng.random() < 0.7:
                    trunk_h, crown = rng.uniform(2.0, 3.5), rng.uniform(1.3, 2.4)
                    self.static.append(_part(cylinder(0.15, trunk_h, (x, y, trunk_h / 2), 6), "vegetation", "bark"))
                    self.static.append(
                        _part(
                            ellipsoid((crown, crown, crown * rng.uniform(0.8, 1.2)), (x, y, trunk_h + crown * 0.8)), "vegetation", "foliage"
                        )
                    )
                else:
                    length, height = rng.uniform(2, 8), rng.uniform(0.8, 1.5)
                    self.static.append(_part(box((length, 1.0, height), (x + length / 2, y, height / 2)), "vegetation", "foliage"))
                x += rng.uniform(5, 16)
            # Poles with signs or traffic lights near the curb.
            x = self.x0 + rng.uniform(0, 20)
            while x < self.x1:
                y = side * (hw + 0.6)
                if rng.random() < 0.3:
                    pole_h = 5.0
                    self.static.append(_part(cylinder(0.09, pole_h, (x, y, pole_h / 2), 8), "pole", "metal"))
                    self.static.append(_part(box((0.35, 0.35, 1.0), (x - 0.25, y, pole_h - 0.3)), "traffic light", "housing"))
                else:
                    pole_h = rng.uniform(2.6, 3.6)
                    color = SIGN_COLORS[rng.integers(len(SIGN_COLORS))]
                    self.static.append(_part(cylinder(0.05, pole_h, (x, y, pole_h / 2), 8), "pole", "metal"))
                    self.static.append(_part(box((0.06, 0.75, 0.75), (x - 0.08, y, pole_h - 0.2)), "traffic sign", "sign", color))
                x += rng.uniform(18, 45)

    # ------------------------------------------------------------- agents
    def car(self, label: str = "car") -> SceneMesh:
        rng = self.rng
        iid = self.instance(label)
        paint = tuple(rng.uniform(0.05, 0.9, 3) * (rng.uniform(0.2, 1.0) if rng.random() < 0.3 else 1.0))
        if label == "car":
            length, width = rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9)
            body = box((length, width, 0.75), (0, 0, 0.7))
            cabin = box((length * 0.5, width * 0.9, 0.55), (-length * 0.05, 0, 1.35))
            parts = [_part(body, label, "car_paint", paint, iid), _part(cabin, label, "glass", None, iid)]
            wheel_z, wheel_x = 0.33, length * 0.32
        elif label == "truck":
            length, width = rng.uniform(6.5, 9.0), 2.4
            cab = box((2.0, width, 2.4), (length / 2 - 1.0, 0, 1.6))
            cargo = box((length - 2.2, width, 3.0), (-1.1, 0, 1.95))
            windscreen = box((0.05, width * 0.9, 0.8), (length / 2 + 0.01, 0, 2.2))
            parts = [
                _part(cab, label, "car_paint", paint, iid),
                _part(cargo, label, "car_paint", tuple(rng.uniform(0.5, 0.9, 3)), iid),
                _part(windscreen, label, "glass", None, iid),
            ]
            wheel_z, wheel_x = 0.5, length * 0.35
        else:  # bus
            length, width = rng.uniform(10.0, 12.0), 2.5
            shell = box((length, width, 2.6), (0, 0, 1.7))
            windows = box((length * 0.9, width + 0.02, 0.9), (0, 0, 2.2))
            parts = [_part(shell, label, "car_paint", paint, iid), _part(windows, label, "glass", None, iid)]
            wheel_z, wheel_x = 0.5, length * 0.35
        for sx in (-1, 1):
            for sy in (-1, 1):
                wheel = box((2 * wheel_z, 0.25, 2 * wheel_z), (sx * wheel_x, sy * (width / 2 - 0.1), wheel_z))
                parts.append(_part(wheel, label, "tyre", None, iid))
        return SceneMesh.concat(parts)

    def person(self, label: str = "person", base: float = 0.0, iid: int | None = None) -> SceneMesh:
        rng = self.rng
        iid = self.instance(label) if iid is None else iid
        s = rng.uniform(0.85, 1.1)
        top, legs = tuple(rng.uniform(0.05, 0.9, 3)), tuple(rng.uniform(0.05, 0.5, 3))
        skin = MATERIALS[MATERIAL_ID["skin"]].color if rng.random() < 0.6 else (0.45, 0.30, 0.22)
        parts = [
            _part(box((0.28 * s, 0.38 * s, 0.85 * s), (0, 0, base + 0.425 * s)), label, "cloth", legs, iid),
            _part(box((0.26 * s, 0.46 * s, 0.62 * s), (0, 0, base + 1.16 * s)), label, "cloth", top, iid),
            _part(ellipsoid((0.1 * s, 0.1 * s, 0.12 * s), (0, 0, base + 1.6 * s), 5, 8), label, "skin", skin, iid),
        ]
        return SceneMesh.concat(parts)

    def bicycle(self) -> SceneMesh:
        iid = self.instance("bicycle")
        color = tuple(self.rng.uniform(0.1, 0.9, 3))
        parts = [_part(box((1.0, 0.06, 0.08), (0, 0, 0.65)), "bicycle", "metal", color, iid)]
        parts += [_part(box((0.68, 0.05, 0.68), (sx * 0.52, 0, 0.34)), "bicycle", "tyre", None, iid) for sx in (-1, 1)]
        parts.append(_part(box((0.06, 0.06, 0.45), (-0.25, 0, 0.8)), "bicycle", "metal", color, iid))
        return SceneMesh.concat(parts)

    def traffic(self, ego_speed: float, duration: float) -> None:
        rng, lay = self.rng, self.layout
        span = (self.x0, self.x1)
        hw = lay.half_width
        lanes = [(-(k + 0.5) * LANE_WIDTH, 1) for k in range(lay.lanes_per_direction)]
        lanes += [((k + 0.5) * LANE_WIDTH, -1) for k in range(lay.lanes_per_direction)]
        for y, direction in lanes:
            x = span[0] + rng.uniform(5, 25)
            while x < span[1] + ego_speed * duration:
                label = "car" if rng.random() < 0.85 else ("truck" if rng.random() < 0.5 else "bus")
                in_ego_lane = direction > 0 and abs(y - sum(lay.ego_lane) / 2) < 0.1
                if in_ego_lane:  # ego-lane traffic keeps its distance to the ego
                    if abs(x) > 12:
                        self.agents.append(Agent(self.car(label), x, y, ego_speed))
                else:
                    self.agents.append(Agent(self.car(label), x, y + rng.uniform(-0.3, 0.3), direction * rng.uniform(7, 12)))
                x += rng.uniform(18, 60)
        if lay.parking:
            for side in (-1, 1):
                x = span[0] + rng.uniform(0, 6)
                y = side * (hw - 1.1)
                while x < span[1]:
                    if rng.random() < 0.65:
                        self.agents.append(Agent(self.car(), x, y, 0.0))
                    x += rng.uniform(5.5, 9)
        for side in (-1, 1):
            x = span[0] + rng.uniform(0, 10)
            while x < span[1]:
                y = side * (hw + rng.uniform(0.9, SIDEWALK_WIDTH - 0.4))
                speed = rng.choice([-1, 1]) * rng.uniform(0.9, 1.7) if rng.random() < 0.8 else 0.0
                self.agents.append(Agent(self.person(base=CURB_HEIGHT), x, y, speed))
                x += rng.uniform(4, 25)
        x = span[0] + rng.uniform(10, 40)
        while x < span[1]:
            y = -(lay.lanes_per_direction * LANE_WIDTH - 0.7)
            speed = rng.uniform(4, 7)
            bike = self.bicycle()
            rider = self.person("rider", base=0.45)
            self.agents.append(Agent(SceneMesh.concat([bike, rider]), x, y, speed))
            x += rng.uniform(30, 90)


def build_world(seed: int, duration: float, layout: RoadLayout | None = None, ego_speed: float = 10.0, margin: float = 150.0) -> World:
    """A street long enough for the ego to drive `duration` seconds with `margin` metres of view around it."""
    layout = layout or RoadLayout()
    builder = _Builder(seed, layout, (-margin, ego_speed * duration + margin))
    builder.ground()
    builder.roadside()
    builder.traffic(ego_speed, duration)
    elevation, azimuth = builder.rng.uniform(np.radians(25), np.radians(60)), builder.rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)])
    return World(
        seed=seed,
        layout=layout,
        static=SceneMesh.concat(builder.static),
        agents=builder.agents,
        sun=sun,
        ego_speed=ego_speed,
        instance_classes=builder.instance_classes,
    )
