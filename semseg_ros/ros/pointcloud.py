"""sensor_msgs/PointCloud2 <-> numpy without sensor_msgs_py: any field layout, offsets, point_step, endianness.

`read_points` returns float32 xyz (and intensity when present) of the finite points plus their
indices into the cloud; `labelled_cloud` packs x, y, z, intensity, label, rgb, cluster (and
confidence) into a new cloud for RViz and downstream clustering.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from semseg_ros.errors import SemsegError

# sensor_msgs/PointField datatypes
DATATYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}
FLOAT32, UINT8, INT32 = 7, 2, 5  # sensor_msgs/PointField datatypes of the fields we write


class CloudError(SemsegError):
    """A point cloud message that cannot be read."""


def cloud_dtype(msg: Any, names: tuple[str, ...]) -> np.dtype:
    """A structured dtype over one point_step that picks `names` at their offsets."""
    fields = {f.name: f for f in msg.fields}
    endian = ">" if msg.is_bigendian else "<"
    spec: dict[str, Any] = {"names": [], "formats": [], "offsets": [], "itemsize": int(msg.point_step)}
    for name in names:
        field = fields[name]
        if field.datatype not in DATATYPES:
            raise CloudError(f"field '{name}' has unknown datatype {field.datatype}")
        fmt = np.dtype(endian + DATATYPES[field.datatype])
        if field.offset + fmt.itemsize > msg.point_step:
            raise CloudError(f"field '{name}' at offset {field.offset} does not fit point_step {msg.point_step}")
        spec["names"].append(name)
        spec["formats"].append(fmt)
        spec["offsets"].append(int(field.offset))
    try:
        return np.dtype(spec)  # type: ignore[call-overload]
    except (ValueError, TypeError) as exc:  # overlapping fields, odd names
        raise CloudError(f"fields {', '.join(map(str, names))} do not form a point layout: {exc}") from None


def _structured_view(msg: Any, names: tuple[str, ...]) -> NDArray[Any]:
    """The cloud's points as a structured array over `names` (a view of msg.data when rows are unpadded).

    Raises CloudError for an empty cloud, an inconsistent layout, truncated data or a bad field.
    """
    width, height, point_step, row_step = int(msg.width), int(msg.height), int(msg.point_step), int(msg.row_step)
    count = width * height
    if count == 0:
        raise CloudError("empty cloud")
    if point_step <= 0 or row_step < width * point_step:
        raise CloudError(f"inconsistent layout: point_step {point_step}, row_step {row_step} for width {width}")
    data = np.frombuffer(msg.data, np.uint8)
    needed = row_step * (height - 1) + width * point_step
    if data.size < needed:
        raise CloudError(f"data holds {data.size} bytes, the layout needs {needed} (truncated message)")
    dtype = cloud_dtype(msg, names)
    if row_step == width * point_step:  # a view of the message's bytes, no copy
        return np.frombuffer(data, dtype=dtype, count=count)
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, width * point_step), strides=(row_step, 1))
    return np.frombuffer(np.ascontiguousarray(rows), dtype=dtype)


def read_fields(msg: Any) -> dict[str, NDArray[Any]]:
    """Every field of every point (non-finite ones included), by name, each a contiguous (N,) array in native byte order."""
    names = tuple(f.name for f in msg.fields)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CloudError(f"cloud names field(s) {', '.join(map(repr, repeated))} more than once")
    points = _structured_view(msg, names)
    return {name: np.ascontiguousarray(points[name]).astype(points[name].dtype.newbyteorder("="), copy=False) for name in names}


def read_points(msg: Any) -> tuple[NDArray[np.float32], NDArray[np.float32] | None, NDArray[np.int64]]:
    """(N x 3 float32 xyz, N intensities or None, N indices into the cloud) of the finite points."""
    names = {f.name for f in msg.fields}
    missing = {"x", "y", "z"} - names
    if missing:
        raise CloudError(f"cloud has no {', '.join(sorted(missing))} field (fields: {', '.join(sorted(names)) or 'none'})")
    intensity_name = next((n for n in ("intensity", "reflectance", "i") if n in names), None)
    points = _structured_view(msg, ("x", "y", "z") + ((intensity_name,) if intensity_name else ()))
    count = len(points)
    xyz = np.empty((count, 3), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 range becomes inf (points are then dropped)
        for column, name in enumerate("xyz"):
            xyz[:, column] = points[name]
        finite = np.isfinite(xyz).all(axis=1)
        intensity = points[intensity_name].astype(np.float32) if intensity_name else None
    if finite.all():  # the usual dense cloud: no second copy
        return xyz, intensity, np.arange(count)
    return xyz[finite], None if intensity is None else intensity[finite], np.flatnonzero(finite)


def pack_rgb(colors: NDArray[np.uint8]) -> NDArray[np.float32]:
    """RViz's packed 'rgb' float32: 0x00RRGGBB reinterpreted as a float."""
    colors = colors.astype(np.uint32)
    return ((colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]).view(np.float32)


def labelled_cloud(
    msg: Any,
    header: Any,
    xyz: NDArray[np.float32],
    intensity: NDArray[np.float32] | None,
    labels: NDArray[np.uint8],
    colors: NDArray[np.uint8],
    clusters: NDArray[np.int32],
    confidence: NDArray[np.uint8] | None = None,
) -> Any:
    """Fill a PointCloud2 with x y z intensity (float32), label (uint8), rgb (float32), cluster (int32) [, confidence (uint8)]."""
    from sensor_msgs.msg import PointField

    layout = [
        ("x", FLOAT32, "<f4"),
        ("y", FLOAT32, "<f4"),
        ("z", FLOAT32, "<f4"),
        ("intensity", FLOAT32, "<f4"),
        ("rgb", FLOAT32, "<f4"),
        ("cluster", INT32, "<i4"),
        ("label", UINT8, "u1"),
    ]
    if confidence is not None:
        layout.append(("confidence", UINT8, "u1"))
    dtype = np.dtype({"names": [n for n, _, _ in layout], "formats": [f for _, _, f in layout]})
    cloud = np.empty(len(xyz), dtype=dtype)  # packed: every byte is one of the fields below
    cloud["x"], cloud["y"], cloud["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    cloud["intensity"] = 0.0 if intensity is None else intensity
    cloud["rgb"] = pack_rgb(colors)
    cloud["cluster"] = clusters
    cloud["label"] = labels
    if confidence is not None:
        cloud["confidence"] = confidence
    msg.header = header
    msg.height, msg.width = 1, len(cloud)
    offsets: dict[str, Any] = dict(dtype.fields or {})
    msg.fields = [PointField(name=n, offset=int(offsets[n][1]), datatype=t, count=1) for n, t, _ in layout]
    msg.is_bigendian = False
    msg.point_step = dtype.itemsize
    msg.row_step = dtype.itemsize * len(cloud)
    msg.is_dense = True
    msg.data = cloud.tobytes()  # bytes: the setter copies them into its array with one memcpy (an array.array goes item by item)
    return msg
