"""Topic names of the KITTI setup: the bags' topics (`semseg kitti2bag`) and the nodes' remaps, one table used by
launch/kitti.launch.py, `semseg launch kitti`, the bag writer and the demo.

A leaf module (no imports): the launch path reads topic names without loading the bag machinery.
"""

from __future__ import annotations

# Topics of a bag written by `semseg kitti2bag`: camera, Velodyne and OXTS names as tomas789/kitti2bag gives them.
TOPICS = {
    "image": "/kitti/camera_color_left/image_raw",
    "camera_info": "/kitti/camera_color_left/camera_info",
    "points": "/kitti/velo/pointcloud",
    "semantic": "/kitti/camera_color_left/semantic",
    "point_labels": "/kitti/velo/labels",
    "imu": "/kitti/oxts/imu",
    "gps_fix": "/kitti/oxts/gps/fix",
    "gps_vel": "/kitti/oxts/gps/vel",
    "tf": "/tf",
    "tf_static": "/tf_static",
}


OUT = "/semseg"
KITTI_REMAPS: dict[str, dict[str, str]] = {
    "segmentation_node": {
        "image": TOPICS["image"],
        "mask": f"{OUT}/mask",
        "color_mask": f"{OUT}/color_mask",
        "overlay": f"{OUT}/overlay",
        "confidence": f"{OUT}/confidence",
        "labels": f"{OUT}/labels",
    },
    "fusion_node": {
        "points": TOPICS["points"],
        "mask": f"{OUT}/mask",
        "confidence": f"{OUT}/confidence",
        "camera_info": TOPICS["camera_info"],
        "labels": f"{OUT}/labels",
        "labelled_points": f"{OUT}/labelled_points",
        "clusters": f"{OUT}/clusters",
    },
}


def remap_arguments(node: str) -> list[str]:
    """`--ros-args -r from:=to ...` for one node of the KITTI setup."""
    args = ["--ros-args"]
    for source, target in KITTI_REMAPS[node].items():
        args += ["-r", f"{source}:={target}"]
    return args
