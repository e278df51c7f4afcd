"""Topic wiring of the KITTI setup: one table used by launch/kitti.launch.py and `semseg launch kitti`."""

from __future__ import annotations

from semseg_ros.bags import TOPICS

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
