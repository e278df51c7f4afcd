"""The shipped real model plus fusion on real KITTI frames: do the lidar points in real objects get their class?

    .venv/bin/python bench/kitti_real.py [--model models/camvid_unet_mobilenet.pt] [--size 256,832]

For each real frame in test/data/kitti_real/object (image, Velodyne sweep, calib, 3D boxes): segment the
image (ONNX Runtime on CPU, the network at `--size`, as config/kitti.yaml runs it), label the points with
the default fusion settings, and score them against the boxes (semseg_ros.eval.object_points): recall =
in-box points with the box's class, precision = object-labelled points inside a box of that class. The
same with a mask drawn from the boxes themselves shows what perfect masks would give. Also prints the
latency of one prediction at 1242x375, interleaved with the `--baseline` model's (the synthetic one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semseg_ros.calibration import Calibration  # noqa: E402
from semseg_ros.data.kitti_object import box_mask, read_kitti_labels  # noqa: E402
from semseg_ros.eval.object_points import ObjectPointCounts, object_point_counts  # noqa: E402
from semseg_ros.fusion.label_points import label_points  # noqa: E402
from semseg_ros.inference.segmenter import Segmenter  # noqa: E402
from semseg_ros.labels import get_label_set  # noqa: E402
from semseg_ros.node_params import REAL_MODEL, SYNTHETIC_MODEL  # noqa: E402

OBJECT = ROOT / "test" / "data" / "kitti_real" / "object"


def score_frames(segmenter: Segmenter, frames: list[str]) -> tuple[dict[str, ObjectPointCounts], dict[str, ObjectPointCounts]]:
    """Per frame: counts with the model's masks, and with masks drawn from the boxes."""
    model, perfect = {}, {}
    label_set = get_label_set(segmenter.card.label_set)
    for frame in frames:
        rgb = cv2.cvtColor(cv2.imread(str(OBJECT / "image_2" / f"{frame}.png")), cv2.COLOR_BGR2RGB)
        size = (rgb.shape[1], rgb.shape[0])
        calibration = Calibration.from_kitti_object(OBJECT / "calib" / f"{frame}.txt", image_size=size)
        points = np.fromfile(OBJECT / "velodyne" / f"{frame}.bin", dtype="<f4").reshape(-1, 4)
        boxes = read_kitti_labels(OBJECT / "label_2" / f"{frame}.txt")
        for store, mask in ((model, segmenter.predict(rgb).labels), (perfect, box_mask(boxes, calibration, label_set, size))):
            labelled = label_points(points, mask, calibration)
            store[frame] = object_point_counts(points, labelled.labels, labelled.in_view, boxes, calibration, label_set)
    return model, perfect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / REAL_MODEL))
    parser.add_argument("--size", default="256,832", help="network input height,width")
    parser.add_argument("--baseline", default=str(ROOT / "models" / SYNTHETIC_MODEL), help="model timed side by side")
    parser.add_argument("--runs", type=int, default=10, help="timed predictions at 1242x375")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split(","))
    frames = sorted(p.stem for p in (OBJECT / "image_2").glob("*.png"))
    with tempfile.TemporaryDirectory() as cache:
        segmenter = Segmenter.from_path(args.model, input_size=(height, width), cache_dir=cache)
        baseline = Segmenter.from_path(args.baseline, input_size=(height, width), cache_dir=cache)
        model, perfect = score_frames(segmenter, frames)
        image = cv2.cvtColor(cv2.imread(str(OBJECT / "image_2" / "000001.png")), cv2.COLOR_BGR2RGB)
        times: dict[str, list[float]] = {"model": [], "baseline": []}
        for _ in range(args.runs + 1):  # interleaved, the first round is warm-up
            for name, timed in (("model", segmenter), ("baseline", baseline)):
                start = time.perf_counter()
                timed.predict(image)
                times[name].append((time.perf_counter() - start) * 1e3)
    print(f"model {Path(args.model).name} ({type(segmenter.backend).__name__}), network {width}x{height}, {len(frames)} real KITTI frames")
    print(f"{'frame':<8}{'recall':>8}{'precision':>11}{'in-box pts':>12}{'object pts':>12}   box-mask recall / precision")
    for frame in frames:
        m, p = model[frame], perfect[frame]
        print(f"{frame:<8}{m.recall:8.3f}{m.precision:11.3f}{m.in_boxes:12d}{m.labelled_objects:12d}   {p.recall:.3f} / {p.precision:.3f}")
    total, best = sum(model.values(), ObjectPointCounts()), sum(perfect.values(), ObjectPointCounts())
    print(f"{'all':<8}{total.recall:8.3f}{total.precision:11.3f}{total.in_boxes:12d}{total.labelled_objects:12d}   {best.recall:.3f} / {best.precision:.3f}")
    ours, theirs = statistics.median(times["model"][1:]), statistics.median(times["baseline"][1:])
    print(
        f"predict at 1242x375, p50 over {args.runs} interleaved runs: {ours:.1f} ms ({type(segmenter.backend).__name__}), "
        f"baseline {Path(args.baseline).name} {theirs:.1f} ms ({type(baseline.backend).__name__}), ratio {ours / theirs:.2f}"
    )


if __name__ == "__main__":
    main()
