"""The KITTI calibration chain against the real 2011_09_26 values (REFERENCE.md section 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semseg_ros.calibration import Calibration
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
