"""The KITTI calibration chain against the real 2011_09_26 values (REFERENCE.md section 1)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semseg_ros.calibration import Calibration, CalibrationSource, read_calib_file, rigid_from_pose
from semseg_ros.errors import CalibrationError

# The real files' lines, typed in independently of the package's own copy.
CAM_TO_CAM = """calib_time: 09-Jan-2012 13:57:47
S_rect_00: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_00: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
S_rect_02: 1.242000e+03 3.750000e+02
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""
VELO_TO_CAM = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
delta_f: 0.000000e+00 0.000000e+00
delta_c: 0.000000e+00 0.000000e+00
"""
R_RECT = np.array(
    [9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03, 7.402527e-03, 4.351614e-03, 9.999631e-01]
).reshape(3, 3)
P2 = np.array([7.215377e02, 0, 6.095593e02, 4.485728e01, 0, 7.215377e02, 1.728540e02, 2.163791e-01, 0, 0, 1, 2.745884e-03]).reshape(3, 4)
R_VC = np.array(
    [7.533745e-03, -9.999714e-01, -6.166020e-04, 1.480249e-02, 7.280733e-04, -9.998902e-01, 9.998621e-01, 7.523790e-03, 1.480755e-02]
).reshape(3, 3)
T_VC = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])


def by_hand(point: np.ndarray) -> tuple[float, float, float]:
    """x = P_rect_02 @ R_rect_00(4x4) @ Tr_velo_to_cam(4x4) @ X, written out step by step."""
    cam = R_VC @ point + T_VC
    rect = R_RECT @ cam
    x = P2[:, :3] @ rect + P2[:, 3]
    return x[0] / x[2], x[1] / x[2], x[2]


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    (tmp_path / "calib_cam_to_cam.txt").write_text(CAM_TO_CAM)
    (tmp_path / "calib_velo_to_cam.txt").write_text(VELO_TO_CAM)
    return tmp_path


def test_point_straight_ahead_lands_near_principal_point(raw_dir: Path) -> None:
    calib = Calibration.from_kitti_raw(raw_dir)
    assert calib.image_size == (1242, 375)
    uv, depth = calib.project(np.array([[30.0, 0.0, 0.0]]))
    # The camera sits 8 cm below the lidar and is pitched by about 0.85 deg: about 11 px at most.
    assert abs(uv[0, 0] - 609.5593) < 15 and abs(uv[0, 1] - 172.854) < 15
    assert depth[0] == pytest.approx(29.73, abs=0.01)  # the lidar sits 27 cm behind the camera


@pytest.mark.parametrize("point", [(10.0, 2.0, -1.0), (5.0, -3.0, 0.5), (60.0, 10.0, 2.0), (3.0, 0.0, -1.6)])
def test_known_points_match_the_hand_computation(raw_dir: Path, point: tuple[float, float, float]) -> None:
    calib = Calibration.from_kitti_raw(raw_dir)
    uv, depth = calib.project(np.array([point]))
    u, v, d = by_hand(np.array(point))
    assert uv[0] == pytest.approx((u, v), abs=1e-6)
    assert depth[0] == pytest.approx(d, abs=1e-9)


def test_hand_value_for_one_point(raw_dir: Path) -> None:
    # (10, 2, -1) in the lidar frame: 2 m left and 1 m down, 10 m ahead -> left of centre, below.
    uv, _ = Calibration.from_kitti_raw(raw_dir).project(np.array([[10.0, 2.0, -1.0]]))
    assert 440 < uv[0, 0] < 480 and 230 < uv[0, 1] < 260


def test_points_behind_the_camera_are_rejected(raw_dir: Path) -> None:
    calib = Calibration.from_kitti_raw(raw_dir)
    points = np.array([[-10.0, 0.0, 0.0], [-5.0, 1.0, -1.0], [10.0, 0.0, -1.0]])
    uv, depth = calib.project(points)
    assert np.all(depth[:2] < 0) and np.all(np.isnan(uv[:2]))
    rows, cols, _, valid = calib.pixel_indices(points)
    assert valid.tolist() == [False, False, True]
    assert rows[:2].tolist() == [0, 0] and cols[:2].tolist() == [0, 0]


def test_vectorised_projection_of_many_points(raw_dir: Path) -> None:
    calib = Calibration.from_kitti_raw(raw_dir)
    points = np.random.default_rng(0).uniform([-50, -30, -3], [80, 30, 5], size=(10_000, 3))
    uv, depth = calib.project(points)
    expected = np.array([by_hand(p) for p in points[:200]])
    front = expected[:, 2] > 0
    np.testing.assert_allclose(uv[:200][front], expected[front, :2], atol=1e-6)
    np.testing.assert_allclose(depth[:200], expected[:, 2], atol=1e-9)


def test_object_and_odometry_files_give_the_same_projection(raw_dir: Path, tmp_path: Path) -> None:
    raw = Calibration.from_kitti_raw(raw_dir)
    tr = np.column_stack([R_VC, T_VC])
    fmt = lambda m: " ".join(f"{v:.9e}" for v in np.ravel(m))  # noqa: E731
    obj = tmp_path / "000000.txt"
    obj.write_text(
        f"P0: {fmt(P2)}\nP1: {fmt(P2)}\nP2: {fmt(P2)}\nP3: {fmt(P2)}\nR0_rect: {fmt(R_RECT)}\nTr_velo_to_cam: {fmt(tr)}\nTr_imu_to_velo: {fmt(tr)}\n"
    )
    odo = tmp_path / "calib.txt"
    odo.write_text(f"P0: {fmt(P2)}\nP1: {fmt(P2)}\nP2: {fmt(P2)}\nP3: {fmt(P2)}\nTr: {fmt(R_RECT @ tr)}\n")
    np.testing.assert_allclose(Calibration.from_kitti_object(obj).velo_to_image, raw.velo_to_image, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(Calibration.from_kitti_object(odo).velo_to_image, raw.velo_to_image, rtol=1e-6, atol=1e-6)


def test_camera_rays_reproject_onto_their_pixels(raw_dir: Path) -> None:
    calib = Calibration.from_kitti_raw(raw_dir).scaled(124, 38)
    centre, dirs = calib.camera_rays()
    rows, cols = np.mgrid[0:38, 0:124]
    points = centre + dirs.reshape(-1, 3) * 7.5
    r, c, depth, valid = calib.pixel_indices(points)
    assert valid.all()
    assert (r == rows.ravel()).all() and (c == cols.ravel()).all()
    np.testing.assert_allclose(depth, 7.5, atol=1e-5)  # pixel_indices works in float32


def test_scaling_keeps_borders_on_borders(raw_dir: Path) -> None:
    calib = Calibration.from_kitti_raw(raw_dir)
    half = calib.scaled(621, 187)
    centre, dirs = calib.camera_rays()
    # Rays through the original corner pixels and borders.
    corners = np.array([dirs[0, 0], dirs[0, -1], dirs[-1, 0], dirs[-1, -1], dirs[187, 621]]) * 20 + centre
    rows, cols, _, valid = half.pixel_indices(corners)
    assert valid.all()
    assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (0, 620), (186, 0), (186, 620), (93, 310)]
    # Same answer through the image_size argument.
    rows2, cols2, _, _ = calib.pixel_indices(corners, image_size=(621, 187))
    assert (rows2 == rows).all() and (cols2 == cols).all()


@pytest.mark.parametrize(
    ("cam_text", "velo_text", "message"),
    [
        (CAM_TO_CAM.replace("P_rect_02", "P_rect_xx"), VELO_TO_CAM, "no 'P_rect_02'"),
        (CAM_TO_CAM.replace("2.745884e-03", ""), VELO_TO_CAM, "has 11 values, expected 12"),
        (CAM_TO_CAM.replace("2.745884e-03", "nan"), VELO_TO_CAM, "non-finite"),
        (CAM_TO_CAM.replace("2.745884e-03", "abc"), VELO_TO_CAM, "not a number"),
        (CAM_TO_CAM, VELO_TO_CAM.replace("T:", "X:"), "no 'T'"),
        (CAM_TO_CAM, VELO_TO_CAM.replace("7.533745e-03 -9.999714e-01", "1.5 1.5"), "not a rotation"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path: Path, cam_text: str, velo_text: str, message: str) -> None:
    (tmp_path / "calib_cam_to_cam.txt").write_text(cam_text)
    (tmp_path / "calib_velo_to_cam.txt").write_text(velo_text)
    with pytest.raises(CalibrationError, match=message):
        Calibration.from_kitti_raw(tmp_path)


def test_missing_files_and_bad_camera(tmp_path: Path, raw_dir: Path) -> None:
    with pytest.raises(CalibrationError, match=r"calib_cam_to_cam\.txt: calibration file not found"):
        Calibration.from_kitti_raw(tmp_path / "nowhere")
    with pytest.raises(CalibrationError, match="camera index 7"):
        Calibration.from_kitti_raw(raw_dir, camera=7)
    with pytest.raises(CalibrationError, match="no 'P_rect_01'"):
        Calibration.from_kitti_raw(raw_dir, camera=1)
    with pytest.raises(CalibrationError, match="not found"):
        Calibration.from_kitti_object(tmp_path / "missing.txt")


def test_bad_matrices_and_points() -> None:
    with pytest.raises(CalibrationError, match="shape"):
        Calibration(np.eye(3), np.eye(3), np.eye(4))
    with pytest.raises(CalibrationError, match="degenerate"):
        Calibration(np.zeros((3, 4)), np.eye(3), np.eye(4))
    calib = Calibration.from_projection(P2, np.eye(4))
    with pytest.raises(CalibrationError, match="image size unknown"):
        calib.pixel_indices(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="Nx3"):
        calib.project(np.zeros(3))


# ---------------------------------------------------------------- every KITTI calibration variant
def _fmt(matrix: np.ndarray) -> str:
    return " ".join(f"{v:.9e}" for v in np.ravel(matrix))


TR = np.column_stack([R_VC, T_VC])
CALIB_FILES = {
    # KITTI object: `key: values`, R0_rect and Tr_velo_to_cam.
    "object": "".join(f"P{i}: {_fmt(P2)}\n" for i in range(4))
    + f"R0_rect: {_fmt(R_RECT)}\nTr_velo_to_cam: {_fmt(TR)}\nTr_imu_to_velo: {_fmt(TR)}\n",
    # KITTI tracking: P0-P3 with colons, R_rect, Tr_velo_cam and Tr_imu_velo without.
    "tracking": "".join(f"P{i}: {_fmt(P2)}\n" for i in range(4))
    + f"R_rect {_fmt(R_RECT)}\nTr_velo_cam {_fmt(TR)}\nTr_imu_velo {_fmt(TR)}\n",
    # KITTI odometry calib.txt: P0-P3 and Tr (lidar to rectified camera 0), no R0_rect.
    "odometry": "".join(f"P{i}: {_fmt(P2)}\n" for i in range(4)) + f"Tr: {_fmt(R_RECT @ TR)}\n",
}


@pytest.mark.parametrize("kind", sorted(CALIB_FILES))
def test_object_tracking_and_odometry_files_load_and_label_points(raw_dir: Path, tmp_path: Path, kind: str) -> None:
    """Regression: tracking keys without a colon were refused; no variant carries an image size, and
    label_points (as fusion_node calls it) failed with "cannot rescale a calibration whose image size is unknown"."""
    from semseg_ros.fusion.label_points import label_points

    raw = Calibration.from_kitti_raw(raw_dir)
    path = tmp_path / f"{kind}.txt"
    path.write_text(CALIB_FILES[kind])
    calib = Calibration.from_kitti_object(path)
    assert calib.image_size is None
    np.testing.assert_allclose(calib.velo_to_image, raw.velo_to_image, rtol=1e-6, atol=1e-6)
    points = np.random.default_rng(1).uniform([2, -20, -2], [60, 20, 2], size=(5000, 3))
    mask = np.random.default_rng(2).integers(0, 19, size=(375, 1242), dtype=np.uint8)
    got, want = label_points(points, mask, calib), label_points(points, mask, raw)
    assert got.in_view.sum() > 1000
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.in_view, want.in_view)


@st.composite
def calib_texts(draw: st.DrawFn) -> tuple[str, dict[str, np.ndarray]]:
    """A calibration file with random keys and matrices, each line written with a colon or without, in
    %e, %g or repr style, with stray blank lines, spaces, tabs and CRLF endings."""
    names = draw(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True), min_size=1, max_size=6, unique=True))
    finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    matrices = {name: np.array(draw(st.lists(finite, min_size=1, max_size=12))) for name in names}
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for name, values in matrices.items():
        style = draw(st.sampled_from(["{:.6e}", "{:.12g}", "{!r}"]))
        sep = draw(st.sampled_from([": ", ":", " ", "\t", " : "]))
        lines.append(name + sep + draw(st.sampled_from([" ", "  ", "\t"])).join(style.format(float(v)) for v in values))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(["", "   ", "\t"])))
    return newline.join(lines) + newline, matrices


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calib_texts())
def test_calib_files_read_back_whatever_the_separator(tmp_path: Path, case: tuple[str, dict[str, np.ndarray]]) -> None:
    text, matrices = case
    path = tmp_path / "calib.txt"
    path.write_bytes(text.encode())
    entries = read_calib_file(path)
    assert set(entries) == set(matrices)
    for name, values in matrices.items():
        np.testing.assert_allclose([float(t) for t in entries[name]], values, rtol=1e-6)


def _random_rotation(draw: st.DrawFn) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    angles = draw(st.lists(st.floats(-np.pi, np.pi), min_size=3, max_size=3))
    return np.asarray(Rotation.from_euler("xyz", angles).as_matrix())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(sorted(CALIB_FILES)))
def test_any_calibration_in_any_kitti_layout_projects_like_its_matrices(tmp_path: Path, data: st.DataObject, kind: str) -> None:
    """A random calibration written in the object, tracking or odometry layout projects as the chain says."""
    draw = data.draw
    focal = draw(st.floats(100, 2000))
    p = np.array([[focal, 0, draw(st.floats(0, 1500)), draw(st.floats(-500, 500))], [0, focal, draw(st.floats(0, 500)), 0], [0, 0, 1, 0]])
    rect, rotation = _random_rotation(draw), _random_rotation(draw)
    tr = np.column_stack([rotation, draw(st.lists(st.floats(-3, 3), min_size=3, max_size=3))])
    text = CALIB_FILES[kind]
    text = (
        text.replace(_fmt(P2), _fmt(p))
        .replace(_fmt(R_RECT @ TR), _fmt(rect @ tr))
        .replace(_fmt(R_RECT), _fmt(rect))
        .replace(_fmt(TR), _fmt(tr))
    )
    path = tmp_path / "calib.txt"
    path.write_text(text)
    calib = Calibration.from_kitti_object(path, camera=draw(st.integers(0, 3)))
    points = np.random.default_rng(0).uniform(-30, 30, size=(50, 3))
    cam = points @ (rect @ tr[:, :3]).T + rect @ tr[:, 3]
    image = cam @ p[:, :3].T + p[:, 3]
    uv, depth = calib.project(points)
    np.testing.assert_allclose(depth, image[:, 2], rtol=1e-6, atol=1e-6)
    front = image[:, 2] > 0.5
    np.testing.assert_allclose(uv[front], image[front, :2] / image[front, 2:], rtol=1e-5, atol=1e-3)


# ---------------------------------------------------------------- raw images: K and D (ROS image_geometry)
# The real 2011_09_26 camera-2 intrinsics of the unrectified 1392x512 image (calib_cam_to_cam.txt K_02, D_02).
K_02 = np.array([9.597910e02, 0.0, 6.960217e02, 0.0, 9.569251e02, 2.241806e02, 0.0, 0.0, 1.0]).reshape(3, 3)
D_02 = np.array([-3.691481e-01, 1.968681e-01, 1.353473e-03, 5.677587e-04, -6.770705e-02])


class Info:
    """The CameraInfo fields Calibration.from_camera_info reads."""

    def __init__(self, d: np.ndarray, model: str = "plumb_bob", k: np.ndarray = K_02, size: tuple[int, int] = (1392, 512)) -> None:
        self.width, self.height = size
        self.k, self.d, self.distortion_model = k.ravel().tolist(), list(d), model
        self.p = np.column_stack([k, np.zeros(3)]).ravel().tolist()


def _camera_points(count: int, seed: int = 0) -> np.ndarray:
    """Points in front of the camera (camera frame), up to about 45 degrees off axis."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(2, 60, count)
    return np.column_stack([rng.uniform(-0.8, 0.8, count) * z, rng.uniform(-0.3, 0.3, count) * z, z])


def test_raw_image_projection_applies_kitti_distortion_like_opencv() -> None:
    """Regression: a CameraInfo D was ignored silently; with KITTI camera 2's D that moves points by
    a median of about 14 px and up to more than 100 px inside the 1392x512 raw image."""
    points = _camera_points(20000)
    calib = Calibration.from_camera_info(Info(D_02), np.eye(4), "raw")
    uv, depth = calib.project(points)
    expected, _ = cv2.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K_02, D_02)
    expected = expected.reshape(-1, 2)
    ok = ~np.isnan(uv[:, 0])
    assert ok.mean() > 0.99
    np.testing.assert_allclose(uv[ok], expected[ok], atol=1e-6)
    np.testing.assert_allclose(depth, points[:, 2])
    undistorted, _ = Calibration.from_camera_info(Info(np.zeros(5)), np.eye(4), "raw").project(points)
    inside = ok & (expected[:, 0] >= 0) & (expected[:, 0] < 1392) & (expected[:, 1] >= 0) & (expected[:, 1] < 512)
    shift = np.linalg.norm(uv[inside] - undistorted[inside], axis=1)
    assert np.median(shift) > 10 and shift.max() > 100  # uniform points here; KITTI sweeps: median 14, max 138
    # Pixel indices (what label_points uses) follow the distorted positions.
    rows, cols, _, valid = calib.pixel_indices(points)
    assert valid.sum() > 0.5 * len(points)
    np.testing.assert_array_equal(cols[valid], np.floor(expected[valid, 0] + 0.5))
    np.testing.assert_array_equal(rows[valid], np.floor(expected[valid, 1] + 0.5))


def test_rectified_masks_use_p_and_d_stays_out() -> None:
    info = Info(D_02)
    info.p = P2.ravel().tolist()
    rectified = Calibration.from_camera_info(info, np.eye(4), "rectified")
    assert rectified.distortion is None
    np.testing.assert_array_equal(rectified.projection, P2)
    with pytest.raises(CalibrationError, match="mask_image 'fisheye'"):
        Calibration.from_camera_info(info, np.eye(4), "fisheye")


@settings(max_examples=80, deadline=None)
@given(
    model=st.sampled_from(["plumb_bob", "rational_polynomial", "equidistant"]),
    coefficients=st.lists(st.floats(-0.3, 0.3), min_size=8, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_every_ros_distortion_model_matches_opencv(model: str, coefficients: list[float], seed: int) -> None:
    count = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}[model]  # what ROS writes for each
    d = np.array(coefficients[:count])
    if model != "equidistant":
        d[2:4] *= 0.03  # tangential terms are small on real lenses
    calib = Calibration.from_camera_info(Info(d, model), np.eye(4), "raw")
    points = _camera_points(500, seed)
    uv, _ = calib.project(points)
    if model == "equidistant":
        expected, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K_02, d)
    else:
        expected, _ = cv2.projectPoints(points.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K_02, d)
    expected = expected.reshape(-1, 2)
    ok = ~np.isnan(uv[:, 0])
    radius = np.hypot(points[:, 0], points[:, 1]) / points[:, 2]
    assert ok[radius < calib.max_undistorted_radius * 0.999].all()  # only the folded-back part is dropped
    np.testing.assert_allclose(uv[ok], expected[ok], atol=1e-5)
    # Resizing the mask scales K and keeps D (D acts on normalised coordinates).
    half = calib.scaled(696, 256)
    uv_half, _ = half.project(points)
    np.testing.assert_allclose(uv_half[ok], (expected[ok] + 0.5) * 0.5 - 0.5, atol=1e-5)


def test_points_where_the_distortion_folds_back_never_land_in_the_image() -> None:
    """KITTI's D maps radius r = 1.5 (56 deg off axis) back inside the image; such points must stay out."""
    calib = Calibration.from_camera_info(Info(D_02), np.eye(4), "raw")
    assert 1.1 < calib.max_undistorted_radius < 1.3
    far_off = np.array([[1.5, 0.1, 1.0], [-1.6, 0.0, 1.0]]) * 10
    expected, _ = cv2.projectPoints(far_off.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K_02, D_02)
    assert ((expected[:, 0, 0] > 0) & (expected[:, 0, 0] < 1392)).all()  # where a naive projection puts them
    _, _, _, valid = calib.pixel_indices(far_off)
    assert not valid.any()


def test_unsupported_distortion_is_refused_not_ignored() -> None:
    with pytest.raises(CalibrationError, match="'kannala' is not supported"):
        Calibration.from_camera_info(Info(D_02, "kannala"), np.eye(4), "raw")
    with pytest.raises(CalibrationError, match="at most 8"):
        Calibration.from_camera_info(Info(np.ones(9) * 0.01), np.eye(4), "raw")
    # An all-zero D of any model is no distortion at all.
    assert Calibration.from_camera_info(Info(np.zeros(4), "kannala"), np.eye(4), "raw").distortion is None
    with pytest.raises(CalibrationError, match="camera rays"):
        Calibration.from_camera_info(Info(D_02), np.eye(4), "raw").camera_rays()


def test_plumb_bob_with_eight_coefficients_projects_as_opencv_and_more_are_refused() -> None:
    """Found by an adversary: OpenCV (and so image_geometry) reads 8 plumb_bob coefficients; they were refused."""
    import cv2

    from semseg_ros.calibration import Calibration, CalibrationError

    k = np.array([[700.0, 0.0, 620.0], [0.0, 700.0, 190.0], [0.0, 0.0, 1.0]])
    d = np.array([-0.3, 0.1, 0.001, -0.002, -0.02, 0.05, -0.01, 0.002])
    points = np.random.default_rng(0).uniform([-5, -2, 4], [5, 2, 30], (500, 3))
    extrinsic = np.eye(4)
    calib = Calibration(np.column_stack([k, np.zeros(3)]), np.eye(3), extrinsic, (1240, 380), distortion=d, distortion_model="plumb_bob")
    uv, _ = calib.project(points)
    expected, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), k, d)
    np.testing.assert_allclose(uv, expected.reshape(-1, 2), atol=1e-6)
    with pytest.raises(CalibrationError, match="thin-prism and tilt terms are not supported"):
        Calibration(
            np.column_stack([k, np.zeros(3)]), np.eye(3), extrinsic, (1240, 380), distortion=np.zeros(12), distortion_model="plumb_bob"
        )


# ------------------------------------------------------------ calibration sources and poses


def _manual_quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """The unit-quaternion rotation matrix as fusion_node wrote it out by hand before scipy's Rotation."""
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


@settings(max_examples=60, deadline=None)
@given(
    st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1),
    st.tuples(*[st.floats(-50, 50)] * 3),
)
def test_pose_transform_matches_the_quaternion_formula(quaternion: tuple[float, ...], translation: tuple[float, ...]) -> None:
    unit = np.asarray(quaternion) / np.linalg.norm(quaternion)
    matrix = rigid_from_pose(translation, quaternion)  # normalised first
    np.testing.assert_allclose(matrix[:3, :3], _manual_quaternion_matrix(*unit), atol=1e-9)
    np.testing.assert_allclose(matrix[:3, 3], translation)
    np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])


def test_a_zero_quaternion_is_a_calibration_error() -> None:
    with pytest.raises(CalibrationError, match="rotation quaternion"):
        rigid_from_pose((0, 0, 0), (0, 0, 0, 0))


@pytest.mark.parametrize(
    ("translation", "quaternion", "message"),
    [
        ((float("nan"), 0, 0), (0, 0, 0, 1), "non-finite"),
        ((0, 0, float("inf")), (0, 0, 0, 1), "non-finite"),
        ((0, 0, 0), (float("inf"), 0, 0, 1), "non-finite"),
    ],
)
def test_poses_that_are_no_transform_are_calibration_errors(translation: tuple, quaternion: tuple, message: str) -> None:
    """These once gave a non-finite or zero matrix with no error (an adversary's list)."""
    with pytest.raises(CalibrationError, match=message):
        rigid_from_pose(translation, quaternion)


def test_huge_quaternions_are_normalised_without_overflow() -> None:
    huge, unit = rigid_from_pose((1, 2, 3), (1e300, 1e300, 0, 0)), rigid_from_pose((1, 2, 3), (1, 1, 0, 0))
    np.testing.assert_allclose(huge, unit, atol=1e-12)  # was a zero matrix
    assert np.linalg.det(huge[:3, :3]) == pytest.approx(1.0)


def test_reflections_and_projective_rows_are_not_extrinsics() -> None:
    from semseg_ros.calibration import rigid_problem

    assert rigid_problem(np.eye(4).ravel()) is None
    assert "not a rotation" in str(rigid_problem(np.diag([1.0, 1, -1, 1]).ravel()))
    assert "last row" in str(rigid_problem(np.diag([1.0, 1, 1, 5]).ravel()))
    assert "16 finite values" in str(rigid_problem([0.0] * 15))
    assert "not a rotation" in str(rigid_problem([0.0] * 16))


def source(kind: str, **changes: object) -> CalibrationSource:
    values: dict[str, object] = {
        "kitti_calib_dir": "",
        "kitti_calib_file": "",
        "camera_index": 2,
        "lidar_to_camera": np.eye(4).ravel().tolist(),
        "mask_image": "rectified",
    }
    return CalibrationSource(kind, **{**values, **changes})  # type: ignore[arg-type]


def test_calibration_sources_say_what_they_lack(raw_dir: Path) -> None:
    with pytest.raises(CalibrationError, match=r"kitti_raw \(the default when no params file sets it\) needs kitti_calib_dir"):
        source("kitti_raw")
    with pytest.raises(CalibrationError, match="kitti_object needs kitti_calib_file"):
        source("kitti_object")
    with pytest.raises(CalibrationError, match="mask_image raw needs a camera_info calibration source"):
        source("kitti_raw", kitti_calib_dir=str(raw_dir), mask_image="raw")
    with pytest.raises(CalibrationError, match="expected one of kitti_raw"):
        source("velodyne")


def test_each_source_gives_its_calibration(raw_dir: Path) -> None:
    files = source("kitti_raw", kitti_calib_dir=str(raw_dir))
    assert files.from_files and not files.extrinsic_from_tf
    calibration = files.calibration(Info(np.zeros(5)))  # camera_info plays no part
    assert calibration is not None
    np.testing.assert_allclose(calibration.velo_to_image, Calibration.from_kitti_raw(raw_dir).velo_to_image)

    extrinsic = np.eye(4)
    extrinsic[:3, 3] = (0.1, -0.2, 0.3)
    info = source("camera_info", lidar_to_camera=extrinsic.ravel().tolist())
    assert not info.from_files and info.calibration() is None  # waits for camera_info
    expected = Calibration.from_camera_info(Info(np.zeros(5)), extrinsic).velo_to_image
    np.testing.assert_allclose(info.calibration(Info(np.zeros(5))).velo_to_image, expected)  # type: ignore[union-attr]

    tf = source("camera_info_tf")
    assert tf.extrinsic_from_tf and tf.calibration(Info(np.zeros(5))) is None  # waits for the transform too
    looked_up = rigid_from_pose((0.1, -0.2, 0.3), (0, 0, 0, 1))
    np.testing.assert_allclose(tf.calibration(Info(np.zeros(5)), looked_up).velo_to_image, expected)  # type: ignore[union-attr]
