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

    def __init__(self, calibration: Calibration, nthreads: int = 0):
        self.calibration = calibration
        self.nthreads = nthreads
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
        camera = self._camera(raycaster, scene, world, texture, ego, rng)
        lidar = self._lidar(raycaster, scene, texture, ego, rng)
        return camera, lidar

    def _cast(self, raycaster: o3d.t.geometry.RaycastingScene, origin: NDArray, dirs: NDArray) -> dict[str, NDArray]:
        rays = np.concatenate([np.broadcast_to(origin.astype(np.float32), dirs.shape), dirs], axis=-1)
        result = raycaster.cast_rays(_tensor(rays), nthreads=self.nthreads)
        return {k: result[k].numpy() for k in ("t_hit", "primitive_ids", "primitive_normals")}

    def _camera(self, raycaster, scene: SceneMesh, world: World, texture, ego, rng) -> CameraFrame:
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
        albedo = scene.color[face] * (1.0 + _TEXTURE_AMPLITUDE[material] * pattern)[..., None]
        windows = (material == _FACADE) & _window_mask(points, normals)
        albedo[windows] = np.array([0.16, 0.2, 0.26], np.float32) * (1.0 + 0.3 * pattern[windows, None])

        light_rays = np.concatenate([points + normals * 0.02, np.broadcast_to(world.sun.astype(np.float32), points.shape)], axis=-1)
        shadowed = raycaster.test_occlusions(_tensor(light_rays[seen]), nthreads=self.nthreads).numpy()
        lit = np.zeros((height, width), np.float32)
        lit[seen] = ~shadowed
        lambert = np.clip(normals @ world.sun.astype(np.float32), 0.0, 1.0) * lit
        colour = albedo * (0.38 + 0.72 * lambert)[..., None] * np.array([1.0, 0.97, 0.92], np.float32)

        sky = _sky(self.camera_dirs, texture)
        haze = (1.0 - np.exp(-np.where(seen, depth, np.inf) / 350.0))[..., None]
        colour = colour * (1.0 - haze) + sky * haze
        colour = np.where(seen[..., None], colour, sky)
        colour = colour * rng.uniform(0.9, 1.1) + rng.normal(0.0, 0.012, colour.shape).astype(np.float32)
        rgb = (np.clip(colour, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

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
