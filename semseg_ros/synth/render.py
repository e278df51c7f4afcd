"""Ray-cast one scene for both sensors: the rectified colour camera and an HDL-64E-like lidar.

Camera rays come from the `Calibration` itself, so lidar points projected through the written
calibration land on the pixels that saw the same surface.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d
from numpy.typing import NDArray

from semseg_ros.calibration import Calibration
from semseg_ros.labels import CITYSCAPES_ID
from semseg_ros.synth.scene import MATERIAL_ID, MATERIALS, SceneMesh, World

TEXTURE_SIZE = 256
TEXELS_PER_FEATURE = 16.0
LIDAR_MAX_RANGE = 120.0
LIDAR_MIN_RANGE = 1.0
HDL64_AZIMUTH_STEPS = 2083  # 0.1728 deg at 10 Hz
SKY = CITYSCAPES_ID["sky"]

_TEXTURE_SCALE = np.array([m.texture_scale for m in MATERIALS], np.float32)
_TEXTURE_AMPLITUDE = np.array([m.texture_amplitude for m in MATERIALS], np.float32)
_REFLECTANCE = np.array([m.reflectance for m in MATERIALS], np.float32)
_FACADE = MATERIAL_ID["facade"]


@dataclass(frozen=True)
class Appearance:
    """How a world looks to the camera (labels and lidar are unaffected).

    `plain()` is the renderer's one fixed look; `randomised(seed)` draws a look per world for domain
    randomisation (Tobin et al. 2017, arXiv 1703.06907): an albedo gain per class, texture strength,
    ambient and direct light with a colour cast, haze distance, sky tint, and a camera response (gamma,
    sensor noise, defocus blur, JPEG compression). Colours are linear values in [0, 1].
    """

    class_gain: NDArray[np.float32]  # (256, 3) albedo gain per Cityscapes label id
    texture_gain: float  # multiplies each material's texture amplitude
    ambient: float  # light on every lit or shadowed surface
    direct: float  # sunlight, times the Lambert term
    light_tint: NDArray[np.float32]  # (3,) colour of the light
    haze_m: float  # distance (m) at which 63 % of a surface's colour is haze
    sky_gain: NDArray[np.float32]  # (3,)
    gamma: float  # output = colour ** gamma
    noise: float  # standard deviation of per-pixel sensor noise
    blur_px: float  # Gaussian defocus sigma in pixels, 0 for none
    jpeg_quality: int  # 0 for none

    @staticmethod
    def plain() -> Appearance:
        return Appearance(
            np.ones((256, 3), np.float32), 1.0, 0.38, 0.72, np.array([1.0, 0.97, 0.92], np.float32), 350.0,
            np.ones(3, np.float32), 1.0, 0.012, 0.0, 0,
        )  # fmt: skip

    @staticmethod
    def randomised(seed: int) -> Appearance:
        rng = np.random.default_rng([seed, 0xD0])
        return Appearance(
            class_gain=rng.uniform(0.6, 1.4, (256, 3)).astype(np.float32),
            texture_gain=float(rng.uniform(0.3, 2.5)),
            ambient=float(rng.uniform(0.15, 0.6)),
            direct=float(rng.uniform(0.35, 1.0)),
            light_tint=rng.uniform(0.85, 1.15, 3).astype(np.float32),
            haze_m=float(rng.uniform(120.0, 800.0)),
            sky_gain=rng.uniform(0.75, 1.15, 3).astype(np.float32),
            gamma=float(rng.uniform(0.7, 1.4)),
            noise=float(rng.uniform(0.004, 0.04)),
            blur_px=float(rng.uniform(0.4, 1.5)) if rng.random() < 0.5 else 0.0,
            jpeg_quality=int(rng.integers(25, 90)) if rng.random() < 0.5 else 0,
        )


@dataclass
class CameraFrame:
    rgb: NDArray[np.uint8]  # (H, W, 3)
    label: NDArray[np.uint8]  # (H, W) Cityscapes label ids
    instance: NDArray[np.uint16]  # (H, W) instance ids, 0 for stuff
    depth: NDArray[np.float32]  # (H, W) camera depth in metres, inf for sky
    points: NDArray[np.float32]  # (H, W, 3) world coordinates of the surface seen (NaN for sky)


@dataclass
class LidarFrame:
    points: NDArray[np.float32]  # (N, 4) x, y, z, reflectance in the Velodyne frame
    label: NDArray[np.uint32]  # (N,) lower 16 bits Cityscapes label id, upper 16 bits instance id


def hdl64_directions(azimuth_steps: int = HDL64_AZIMUTH_STEPS) -> NDArray[np.float32]:
    """Unit ray directions (64 * steps, 3) of an HDL-64E sweep: +2.0 to -8.33 deg, then to -24.9 deg."""
    elevation = np.radians(np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.9, 32)]))
    azimuth = np.linspace(np.pi, -np.pi, azimuth_steps, endpoint=False)
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
    return dirs.reshape(-1, 3).astype(np.float32)


def noise_texture(seed: int, size: int = TEXTURE_SIZE) -> NDArray[np.float32]:
    """A tileable 1/f noise image with zero mean and unit standard deviation."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.rfftfreq(size), indexing="ij")
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius**1.4
    spectrum[0, 0] = 0.0
    image = np.fft.irfft2(spectrum, s=(size, size))
    return ((image - image.mean()) / image.std()).astype(np.float32)


class Renderer:
    """Renders frames of a `World` for one camera calibration and a 64-beam lidar."""

    def __init__(self, calibration: Calibration, nthreads: int = 0, randomise_appearance: bool = False):
        self.calibration = calibration
        self.nthreads = nthreads
        self.randomise_appearance = randomise_appearance  # a look of its own per world (`Appearance.randomised`)
        centre, directions = calibration.camera_rays()
        self.camera_centre = centre
        self.camera_dirs = directions.astype(np.float32)
        self.lidar_dirs = hdl64_directions()

    def render(self, world: World, t: float, rng: np.random.Generator) -> tuple[CameraFrame, LidarFrame]:
        scene = world.scene_at(t)
        raycaster = o3d.t.geometry.RaycastingScene()
        raycaster.add_triangles(_tensor(scene.vertices.astype(np.float32)), _tensor(scene.faces.astype(np.uint32)))
        texture = noise_texture(world.seed)
        ego = world.ego_position(t)
        look = Appearance.randomised(world.seed) if self.randomise_appearance else Appearance.plain()
        camera = self._camera(raycaster, scene, world, texture, ego, rng, look)
        lidar = self._lidar(raycaster, scene, texture, ego, rng)
        return camera, lidar

    def _cast(self, raycaster: o3d.t.geometry.RaycastingScene, origin: NDArray, dirs: NDArray) -> dict[str, NDArray]:
        rays = np.concatenate([np.broadcast_to(origin.astype(np.float32), dirs.shape), dirs], axis=-1)
        result = raycaster.cast_rays(_tensor(rays), nthreads=self.nthreads)
        return {k: result[k].numpy() for k in ("t_hit", "primitive_ids", "primitive_normals")}

    def _camera(self, raycaster, scene: SceneMesh, world: World, texture, ego, rng, look: Appearance) -> CameraFrame:
        height, width = self.camera_dirs.shape[:2]
        origin = ego + self.camera_centre
        hit = self._cast(raycaster, origin, self.camera_dirs)
        depth = hit["t_hit"]
        seen = np.isfinite(depth)
        face = np.where(seen, hit["primitive_ids"], 0).astype(np.int64)
        points = origin.astype(np.float32) + self.camera_dirs * np.where(seen, depth, 0)[..., None]
        normals = _facing(hit["primitive_normals"], self.camera_dirs)
        material = scene.material[face]

        pattern = _sample_texture(texture, points, normals, _TEXTURE_SCALE[material])
        albedo = scene.color[face] * (1.0 + look.texture_gain * _TEXTURE_AMPLITUDE[material] * pattern)[..., None]
        albedo *= look.class_gain[scene.label[face]]
        windows = (material == _FACADE) & _window_mask(points, normals)
        albedo[windows] = np.array([0.16, 0.2, 0.26], np.float32) * (1.0 + 0.3 * pattern[windows, None])

        light_rays = np.concatenate([points + normals * 0.02, np.broadcast_to(world.sun.astype(np.float32), points.shape)], axis=-1)
        shadowed = raycaster.test_occlusions(_tensor(light_rays[seen]), nthreads=self.nthreads).numpy()
        lit = np.zeros((height, width), np.float32)
        lit[seen] = ~shadowed
        lambert = np.clip(normals @ world.sun.astype(np.float32), 0.0, 1.0) * lit
        colour = albedo * (look.ambient + look.direct * lambert)[..., None] * look.light_tint

        sky = _sky(self.camera_dirs, texture) * look.sky_gain
        haze = (1.0 - np.exp(-np.where(seen, depth, np.inf) / look.haze_m))[..., None]
        colour = colour * (1.0 - haze) + sky * haze
        colour = np.where(seen[..., None], colour, sky)
        colour = colour * rng.uniform(0.9, 1.1) + rng.normal(0.0, look.noise, colour.shape).astype(np.float32)
        rgb = _camera_response(np.clip(colour, 0.0, 1.0), look)

        label = np.where(seen, scene.label[face], SKY).astype(np.uint8)
        instance = np.where(seen, scene.instance[face], 0).astype(np.uint16)
        points[~seen] = np.nan
        return CameraFrame(rgb, label, instance, depth.astype(np.float32), points)

    def _lidar(self, raycaster, scene: SceneMesh, texture, ego, rng) -> LidarFrame:
        hit = self._cast(raycaster, ego, self.lidar_dirs)
        rng_m = hit["t_hit"]
        keep = np.isfinite(rng_m) & (rng_m < LIDAR_MAX_RANGE) & (rng_m > LIDAR_MIN_RANGE)
        keep &= rng.random(keep.shape) > 0.06  # dropouts (absorbing, specular or missed returns)
        dirs, rng_m, face = self.lidar_dirs[keep], rng_m[keep], hit["primitive_ids"][keep].astype(np.int64)
        normals = _facing(hit["primitive_normals"][keep], dirs)
        measured = rng_m + rng.normal(0.0, 0.02, rng_m.shape).astype(np.float32)
        xyz = dirs * measured[:, None]
        material = scene.material[face]
        world_points = xyz + ego.astype(np.float32)
        pattern = _sample_texture(texture, world_points, normals, _TEXTURE_SCALE[material])
        incidence = np.abs(np.sum(normals * dirs, axis=1))
        reflectance = _REFLECTANCE[material] * (0.55 + 0.45 * incidence) * (1.0 + 0.2 * pattern)
        reflectance = np.clip(reflectance + rng.normal(0.0, 0.02, reflectance.shape), 0.0, 1.0)
        labels = scene.label[face].astype(np.uint32) | (scene.instance[face].astype(np.uint32) << 16)
        return LidarFrame(np.column_stack([xyz, reflectance]).astype(np.float32), labels)


def _camera_response(colour: NDArray[np.float32], look: Appearance) -> NDArray[np.uint8]:
    """Colours in [0, 1] to 8-bit RGB through the look's gamma, defocus blur and JPEG compression."""
    if look.gamma != 1.0:
        colour = colour**look.gamma
    rgb: NDArray[np.uint8] = (colour * 255.0 + 0.5).astype(np.uint8)
    if look.blur_px > 0:
        rgb = np.asarray(cv2.GaussianBlur(rgb, (0, 0), look.blur_px), np.uint8)
    if look.jpeg_quality:
        ok, encoded = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        if ok:  # channel order is kept both ways
            rgb = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED), np.uint8)
    return rgb


def _tensor(array: NDArray) -> o3d.core.Tensor:
    return o3d.core.Tensor.from_numpy(np.ascontiguousarray(array))


def _facing(normals: NDArray[np.float32], dirs: NDArray[np.float32]) -> NDArray[np.float32]:
    """Unit normals flipped to face the viewer."""
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    normals = normals / np.maximum(length, 1e-12)
    flip = np.sum(normals * dirs, axis=-1, keepdims=True) > 0
    return np.where(flip, -normals, normals).astype(np.float32)


def _sample_texture(texture: NDArray[np.float32], points: NDArray, normals: NDArray, scale: NDArray) -> NDArray[np.float32]:
    """Planar-projected texture lookup: the plane is chosen by the dominant normal axis."""
    axis = np.argmax(np.abs(normals), axis=-1)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    a = np.where(axis == 0, y, x)
    b = np.where(axis == 2, y, z)
    k = scale * TEXELS_PER_FEATURE
    size = texture.shape[0]
    map_x = np.mod(np.nan_to_num(a * k), size).astype(np.float32)
    map_y = np.mod(np.nan_to_num(b * k), size).astype(np.float32)
    return _remap_wrapped(texture, map_x, map_y)


def _remap_wrapped(texture: NDArray[np.float32], map_x: NDArray[np.float32], map_y: NDArray[np.float32]) -> NDArray[np.float32]:
    """Bilinear, wrapping texture lookup at any map shape (OpenCV's remap takes at most 32767 per side)."""
    shape, count, row = map_x.shape, map_x.size, 4096
    padded = -count % row
    grid_x = np.pad(map_x.ravel(), (0, padded)).reshape(-1, row)
    grid_y = np.pad(map_y.ravel(), (0, padded)).reshape(-1, row)
    values = cv2.remap(texture, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    return values.ravel()[:count].reshape(shape).astype(np.float32, copy=False)


def _window_mask(points: NDArray, normals: NDArray) -> NDArray[np.bool_]:
    """Window grid on vertical facades above the ground floor."""
    along = np.where(np.abs(normals[..., 1]) > np.abs(normals[..., 0]), points[..., 0], points[..., 1])
    up = points[..., 2]
    with np.errstate(invalid="ignore"):
        return (
            (np.abs(normals[..., 2]) < 0.5)
            & (np.mod(along, 3.0) > 0.8)
            & (np.mod(along, 3.0) < 2.2)
            & (np.mod(up, 3.2) > 1.0)
            & (np.mod(up, 3.2) < 2.4)
            & (up > 2.5)
        )


def _sky(dirs: NDArray[np.float32], texture: NDArray[np.float32]) -> NDArray[np.float32]:
    """A horizon-to-zenith gradient with soft clouds."""
    unit = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    elevation = np.clip(unit[..., 2], 0.0, 1.0)[..., None]
    horizon, zenith = np.array([0.80, 0.85, 0.90], np.float32), np.array([0.35, 0.55, 0.85], np.float32)
    base = horizon + (zenith - horizon) * np.sqrt(elevation)
    size = texture.shape[0]
    az = np.arctan2(unit[..., 1], unit[..., 0])
    clouds = _remap_wrapped(
        texture, np.mod(az * size / np.pi, size).astype(np.float32), np.mod(elevation[..., 0] * size * 2, size).astype(np.float32)
    )
    return (base + 0.08 * np.clip(clouds, 0, None)[..., None]).astype(np.float32)
