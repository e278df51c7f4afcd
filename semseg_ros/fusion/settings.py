"""Settings of point labelling and clustering: plain dataclasses, the one place their defaults are written.

node_params.FUSION_PARAMS takes the fusion node's defaults from here (no numpy or scipy import, so
the parameter schema stays cheap to load); label_points and cluster re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FusionSettings:
    min_depth: float = 0.5  # metres in front of the camera
    max_depth: float = 0.0  # 0 = no limit
    occlusion: bool = True
    occlusion_window: int = 2  # half-size in pixels of the nearest-depth window
    occlusion_tolerance: float = 0.3  # metres ...
    occlusion_tolerance_ratio: float = 0.1  # ... plus this fraction of the depth


@dataclass
class ClassRule:
    radius: float = 0.6  # link points closer than this (metres)
    min_points: int = 10


@dataclass
class ClusterSettings:
    rules: dict[int, ClassRule] = field(default_factory=dict)  # class id -> rule; classes not listed are not clustered
    voxel: float = 0.0  # voxel size for downsampling before linking (0 = off)
