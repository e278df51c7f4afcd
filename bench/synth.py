"""Synthetic-world speed: seconds per KITTI frame (camera + lidar + ground truth) on one core and on all.

.venv/bin/python bench/synth.py [--frames 20] [--width 1242 --height 375]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from semseg_ros.synth.render import Renderer
from semseg_ros.synth.scene import build_world
from semseg_ros.synth.writers import _layout_for, depth_png, reference_calibration


def run(frames: int, width: int, height: int, threads: int) -> dict[str, float]:
    cv2.setNumThreads(threads if threads else -1)
    world = build_world(1, frames * 0.1, _layout_for(1))
    renderer = Renderer(reference_calibration(width, height), nthreads=threads)
    render, write, points = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for k in range(frames):
            start = time.perf_counter()
            camera, lidar = renderer.render(world, k * 0.1, np.random.default_rng(k))
            middle = time.perf_counter()
            cv2.imwrite(str(out / "image.png"), camera.rgb[..., ::-1])
            cv2.imwrite(str(out / "semantic.png"), camera.label)
            cv2.imwrite(str(out / "depth.png"), depth_png(camera.depth))
            lidar.points.tofile(out / "points.bin")
            lidar.label.tofile(out / "points.label")
            end = time.perf_counter()
            render.append(middle - start)
            write.append(end - middle)
            points.append(len(lidar.points))
    total = [r + w for r, w in zip(render, write, strict=True)]
    return {
        "render_ms": statistics.median(render) * 1e3,
        "write_ms": statistics.median(write) * 1e3,
        "frame_ms_p50": statistics.median(total) * 1e3,
        "frame_ms_max": max(total) * 1e3,
        "points": statistics.mean(points),
        "triangles": len(world.scene_at(0).faces),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--width", type=int, default=1242)
    parser.add_argument("--height", type=int, default=375)
    args = parser.parse_args()
    print(f"synthetic KITTI frame {args.width}x{args.height}, {args.frames} frames, median over frames")
    print(
        f"{'threads':>8} {'render ms':>10} {'write ms':>9} {'frame p50 ms':>13} {'frame max ms':>13} {'points/sweep':>13} {'triangles':>10}"
    )
    for threads in (1, 0):
        r = run(args.frames, args.width, args.height, threads)
        label = "1" if threads == 1 else "all"
        print(
            f"{label:>8} {r['render_ms']:10.1f} {r['write_ms']:9.1f} {r['frame_ms_p50']:13.1f} {r['frame_ms_max']:13.1f}"
            f" {r['points']:13,.0f} {r['triangles']:10,d}"
        )


if __name__ == "__main__":
    main()
