"""segmentation_node with real rclpy (Fast DDS from the Jazzy wheels): outputs, laziness, parameters, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rosutil import image_from_msg, isolate_ros_domain, make_image_msg, spinning, wait_for

isolate_ros_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from semseg_ros.inference.segmenter import Segmenter  # noqa: E402
from semseg_ros.ros.conversions import image_to_rgb  # noqa: E402
from semseg_ros.ros.segmentation_node import SegmentationNode  # noqa: E402

RGB = np.random.default_rng(1).integers(0, 255, (75, 250, 3), dtype=np.uint8)
_CREATED: list[Node] = []


@pytest.fixture(autouse=True)
def _destroy_nodes_left_behind() -> Any:
    """A test that fails before its own destroy_node() would leave a node on the domain, subscribed to `image`,
    and the next test's subscription counts would be off by one (CI once failed twice for one flake)."""
    yield
    while _CREATED:
        _CREATED.pop().destroy_node()  # destroying twice is harmless in rclpy


class Probe(Node):
    """Publishes camera images and records everything the node publishes."""

    def __init__(
        self,
        reliability: ReliabilityPolicy = ReliabilityPolicy.RELIABLE,
        outputs: tuple[str, ...] = ("mask", "color_mask", "overlay", "confidence"),
        depth: int = 5,
        namespace: str = "",
    ):
        super().__init__(f"probe_{int(time.monotonic() * 1e6)}", namespace=namespace)
        _CREATED.append(self)
        self.image_pub = self.create_publisher(Image, "image", QoSProfile(depth=depth, reliability=reliability))
        self.compressed_pub = self.create_publisher(CompressedImage, "image/compressed", QoSProfile(depth=5, reliability=reliability))
        self.received: dict[str, list[Any]] = {name: [] for name in outputs}
        self.subs = [self.create_subscription(Image, name, lambda msg, name=name: self.received[name].append(msg), 10) for name in outputs]
        self.labels: list[String] = []
        self.create_subscription(String, "labels", self.labels.append, QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.diagnostics: list[DiagnosticArray] = []
        self.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)


def make_node(checkpoint: Path, namespace: str = "", **overrides: Any) -> SegmentationNode:
    params = {"model": str(checkpoint), "backend": "torch", "device": "cpu", "warmup_runs": 0, "diagnostics_period": 0.2, **overrides}
    node = SegmentationNode(namespace=namespace, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    _CREATED.append(node)
    return node


def send(probe: Probe, msg: Any, output: str = "mask", count_before: int | None = None, timeout: float = 10.0) -> Any:
    """Publish until the node answers on `output` (discovery can take a moment); returns the answer to `msg`:
    the first output since `count_before` with its header (a reliable copy of an earlier message, sent again
    while the node was slow, may still be answered first)."""
    before = len(probe.received[output]) if count_before is None else count_before

    def answer() -> Any:
        return next((m for m in probe.received[output][before:] if m.header == msg.header), None)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (probe.compressed_pub if isinstance(msg, CompressedImage) else probe.image_pub).publish(msg)
        if wait_for(lambda: answer() is not None, timeout=0.5):
            return answer()
    raise AssertionError(f"no {output} within {timeout} s")


def test_every_encoding_gives_the_segmenter_labels_with_the_header(ros: Any, tiny_checkpoint: Path) -> None:
    node, probe = make_node(tiny_checkpoint), Probe()
    reference = Segmenter.from_path(tiny_checkpoint, backend="torch", device="cpu")
    with spinning(node, probe):
        for encoding, pad, width in [
            ("rgb8", 0, 250),
            ("bgr8", 7, 249),
            ("rgba8", 0, 250),
            ("bgra8", 3, 247),
            ("mono8", 1, 250),
            ("mono16", 2, 250),
            ("yuv422", 0, 250),
            ("yuv422_yuy2", 4, 250),
        ]:
            msg = make_image_msg(
                np.ascontiguousarray(RGB[:, :width]),
                encoding,
                pad=pad,
                big_endian=encoding == "mono16",
                frame_id=f"cam_{encoding}",
                stamp=(100, width),
            )
            mask = send(probe, msg)
            assert mask.header.frame_id == f"cam_{encoding}" and (mask.header.stamp.sec, mask.header.stamp.nanosec) == (100, width)
            assert (mask.height, mask.width, mask.encoding) == (75, width, "mono8")
            expected = reference.predict(image_to_rgb(msg)).labels
            np.testing.assert_array_equal(image_from_msg(mask), expected)
        assert wait_for(lambda: probe.received["color_mask"] and probe.received["overlay"] and probe.received["confidence"])
        colour = probe.received["color_mask"][-1]
        assert colour.encoding == "rgb8" and colour.header.frame_id.startswith("cam_")
        assert wait_for(lambda: probe.labels)
        labels = json.loads(probe.labels[-1].data)
        assert labels["classes"][0] == "road" and len(labels["colors"]) == 19

        def diagnostics() -> dict[str, str]:
            return {kv.key: kv.value for kv in probe.diagnostics[-1].status[0].values} if probe.diagnostics else {}

        assert wait_for(lambda: int(diagnostics().get("processed", 0)) >= 8)
        values = diagnostics()
        assert values["backend"] == "torch" and "infer_ms_p50" in values and values["rejected"] == "0"
    node.destroy_node()
    probe.destroy_node()


def test_outputs_are_lazy(ros: Any, tiny_checkpoint: Path) -> None:
    node = make_node(tiny_checkpoint)
    quiet = Node("quiet_publisher")
    publisher = quiet.create_publisher(Image, "image", 5)
    with spinning(node, quiet):
        assert wait_for(lambda: publisher.get_subscription_count() > 0)
        for _ in range(5):
            publisher.publish(make_image_msg(RGB, "rgb8"))
            time.sleep(0.05)
        assert wait_for(lambda: node.stats.idle >= 1)
        assert node.stats.processed == 0  # nobody listens: no model run
        probe = Probe(outputs=("mask",))
        with spinning(probe):
            send(probe, make_image_msg(RGB, "rgb8"))
            assert node.stats.processed >= 1
        probe.destroy_node()
    node.destroy_node()
    quiet.destroy_node()


def test_live_parameters_and_read_only_ones(ros: Any, tiny_checkpoint: Path) -> None:
    node, probe = make_node(tiny_checkpoint, overlay_alpha=0.0), Probe()
    with spinning(node, probe):
        first = image_from_msg(send(probe, make_image_msg(RGB, "rgb8"), "overlay"))
        np.testing.assert_array_equal(first, RGB)  # alpha 0: the overlay is the image
        assert node.set_parameters([Parameter("overlay_alpha", value=1.0)])[0].successful
        second = image_from_msg(send(probe, make_image_msg(RGB, "rgb8"), "overlay"))
        mask = image_from_msg(probe.received["mask"][-1])
        np.testing.assert_array_equal(second, node.palette[mask])  # alpha 1: pure class colours
        assert not node.set_parameters([Parameter("overlay_alpha", value=2.0)])[0].successful
        refused = node.set_parameters([Parameter("model", value="other.pt")])[0]
        assert not refused.successful and "read-only" in refused.reason.lower()
        palette = [[i, 255 - i, 7] for i in range(19)]
        assert node.set_parameters([Parameter("palette", value=json.dumps(palette))])[0].successful
        colour = image_from_msg(send(probe, make_image_msg(RGB, "rgb8"), "color_mask"))
        label = int(image_from_msg(probe.received["mask"][-1])[0, 0])
        assert tuple(colour[0, 0]) == tuple(palette[label])
        assert not node.set_parameters([Parameter("palette", value="[[1, 2]]")])[0].successful
        assert node.set_parameters([Parameter("publish_color_mask", value=False)])[0].successful
    node.destroy_node()
    probe.destroy_node()


def test_bad_input_and_model_failures_are_survived(ros: Any, tiny_checkpoint: Path) -> None:
    # depth 10: with the default depth 1, a frame arriving while the node still answers `send`'s repeats
    # replaces the one before it, and a loaded CI machine counted 2 of 4 rejections
    node, probe = make_node(tiny_checkpoint, input_depth=10), Probe()
    with spinning(node, probe):
        send(probe, make_image_msg(RGB, "rgb8"))
        for expected, change in enumerate(({"width": 0}, {"encoding": "32FC1"}, {"step": 3}, {"data": b"\x01\x02"}), start=1):
            msg = make_image_msg(RGB, "rgb8")
            for key, value in change.items():
                setattr(msg, key, value)
            probe.image_pub.publish(msg)
            assert wait_for(lambda expected=expected: node.stats.rejected == expected), (change, node.stats.rejected)
        original = node.segmenter.predict
        calls = {"n": 0}

        def flaky(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("simulated CUDA error")
            return original(*args, **kwargs)

        node.segmenter.predict = flaky  # type: ignore[method-assign]
        send(probe, make_image_msg(RGB, "rgb8"))
        assert node.stats.failed == 1
        mask = send(probe, make_image_msg(RGB, "rgb8", frame_id="after"))
        assert mask.header.frame_id == "after"
    node.destroy_node()
    probe.destroy_node()


@pytest.mark.parametrize(
    ("subscription", "reliability"),
    [("best_effort", ReliabilityPolicy.BEST_EFFORT), ("best_effort", ReliabilityPolicy.RELIABLE), ("reliable", ReliabilityPolicy.RELIABLE)],
)
def test_qos_combinations_connect(ros: Any, tiny_checkpoint: Path, subscription: str, reliability: ReliabilityPolicy) -> None:
    node = make_node(tiny_checkpoint, input_reliability=subscription)
    probe = Probe(reliability=reliability, outputs=("mask",))
    with spinning(node, probe):
        assert send(probe, make_image_msg(RGB, "rgb8")).encoding == "mono8"
    node.destroy_node()
    probe.destroy_node()


def test_compressed_transport(ros: Any, tiny_checkpoint: Path) -> None:
    node, probe = make_node(tiny_checkpoint, input_transport="compressed"), Probe(outputs=("mask",))
    _, png = cv2.imencode(".png", RGB[..., ::-1])
    msg = CompressedImage(format="png", data=png.tobytes())
    msg.header.frame_id = "compressed_cam"
    with spinning(node, probe):
        mask = send(probe, msg)
        assert mask.header.frame_id == "compressed_cam" and (mask.height, mask.width) == (75, 250)
        probe.compressed_pub.publish(CompressedImage(format="jpeg", data=b"\xff\xd8broken"))
        assert wait_for(lambda: node.stats.rejected == 1)
    node.destroy_node()
    probe.destroy_node()


def test_newest_frame_policy_drops_instead_of_queueing(ros: Any, tiny_checkpoint: Path) -> None:
    node, probe = make_node(tiny_checkpoint), Probe(outputs=("mask",))
    original = node.segmenter.predict
    node.segmenter.predict = lambda *a, **k: (time.sleep(0.2), original(*a, **k))[1]  # type: ignore[method-assign]
    with spinning(node, probe):
        send(probe, make_image_msg(RGB, "rgb8"))
        for i in range(20):
            probe.image_pub.publish(make_image_msg(RGB, "rgb8", stamp=(200, i)))
            time.sleep(0.01)
        assert wait_for(lambda: probe.received["mask"] and probe.received["mask"][-1].header.stamp.nanosec == 19, timeout=5)
        assert node.stats.dropped >= 5 and node.stats.processed <= 8  # no backlog (21 frames would all be processed): the newest wins
    node.destroy_node()
    probe.destroy_node()


def test_pip_only_runner_with_params_file_and_remaps(tiny_checkpoint: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "segmentation_node": {
                    "ros__parameters": {"model": str(tiny_checkpoint), "backend": "torch", "device": "cpu", "warmup_runs": 0}
                }
            }
        )
    )
    env = {**os.environ}
    process = subprocess.Popen(
        [sys.executable, "-m", "semseg_ros", "node", "segmentation", "--params", str(params), "--ros-args", "-r", "image:=/cam/image", "-r", "mask:=/cam/mask"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    rclpy.init(context=(context := rclpy.Context()))
    probe = Node("runner_probe", context=context)
    masks: list[Image] = []
    probe.create_subscription(Image, "/cam/mask", masks.append, 10)
    publisher = probe.create_publisher(Image, "/cam/image", 10)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(probe)
    try:
        deadline = time.monotonic() + 60
        while not masks and time.monotonic() < deadline and process.poll() is None:
            publisher.publish(make_image_msg(RGB, "rgb8", frame_id="remapped"))
            executor.spin_once(timeout_sec=0.2)
        assert masks and masks[0].header.frame_id == "remapped", process.stdout.read() if process.poll() is not None else "no mask"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
        executor.shutdown()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    assert process.returncode == 0, output
    assert "ready:" in output


def test_bad_params_file_and_missing_model_are_one_line_errors(tiny_checkpoint: Path, tmp_path: Path) -> None:
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({"segmentation_node": {"ros__parameters": {"overlay_alpha": 2.0}}}))
    result = subprocess.run(
        [sys.executable, "-m", "semseg_ros", "node", "segmentation", "--params", str(params)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "segmentation_node.overlay_alpha: 2.0 is outside [0.0, 1.0]" in result.stderr
    params.write_text(yaml.safe_dump({"segmentation_node": {"ros__parameters": {"model": str(tmp_path / "none.pt")}}}))
    result = subprocess.run(
        [sys.executable, "-m", "semseg_ros", "node", "segmentation", "--params", str(params)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "none.pt: file not found" in result.stderr


def test_a_model_for_another_label_set_or_a_corrupt_file_is_a_one_line_start_error(tiny_checkpoint: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[: tiny_checkpoint.stat().st_size // 2])
    cases = {
        "predicts label set cityscapes19 (19 classes), the node's label_set parameter asks for road": [
            "-p", f"model:={tiny_checkpoint}", "-p", "label_set:=road",
        ],
        "not a readable semseg_ros checkpoint (truncated": ["-p", f"model:={truncated}"],
    }  # fmt: skip
    for message, args in cases.items():
        command = [sys.executable, "-m", "semseg_ros", "node", "segmentation", "--ros-args", *args, "-p", "backend:=torch"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and message in result.stderr and len(errors) == 1, result.stderr


@pytest.mark.parametrize(
    ("palette", "reason"),
    [
        ("[[1e400, 0, 0]]", "is not [r, g, b]"),  # OverflowError before
        (json.dumps([[0, 0, 0]] * 257), "1-256"),
        (json.dumps([[0, 0, 300]] * 19), "is not [r, g, b]"),
        (json.dumps([[0, 0, 1.5]] * 19), "is not [r, g, b]"),
        (json.dumps([[0, 0, True]] * 19), "is not [r, g, b]"),
        (json.dumps([[0, 0, 0]] * 18), "18 colours for 19 classes"),
        ("[" * 100_000 + "]" * 100_000, "characters of JSON"),
        ("[" * 5_000 + "]" * 5_000, "not valid JSON"),
        ('{"a": 1}', "expected a list"),
    ],
)
def test_bad_palettes_through_the_parameter_service_are_refused(ros: Any, tiny_checkpoint: Path, palette: str, reason: str) -> None:
    """`ros2 param set /segmentation_node palette ...`: refused with the reason; the node keeps answering."""
    from rclpy.parameter_client import AsyncParameterClient

    node, probe = make_node(tiny_checkpoint), Probe(outputs=("color_mask",))
    with spinning(node, probe):
        client = AsyncParameterClient(probe, "segmentation_node")
        assert client.wait_for_services(timeout_sec=10.0)
        before = node.palette.copy()
        future = client.set_parameters([Parameter("palette", value=palette)])
        assert wait_for(future.done), "the parameter service did not answer"
        result = future.result().results[0]  # type: ignore[union-attr]
        assert not result.successful and reason in result.reason, result.reason
        np.testing.assert_array_equal(node.palette, before)
        assert node.stats.rejected_parameters == 1 and node.stats.callback_errors == 0
        assert send(probe, make_image_msg(RGB, "rgb8"), "color_mask") is not None
    node.destroy_node()
    probe.destroy_node()


def test_two_publishers_are_counted_apart(ros: Any, tiny_checkpoint: Path) -> None:
    """50 frames from two reliable publishers: nothing lost (subtracting one writer's sequence numbers from
    the other's counted 290 lost before)."""
    # Histories that hold every frame on both sides: with keep-last 5/10 a machine that stalls the node's
    # thread for a second let the writer or the reader replace frames not yet taken (CI saw 50 not reached).
    # A namespace of its own: no publisher another test left on /image can be matched and counted.
    node = make_node(tiny_checkpoint, namespace="/counted_apart", input_depth=50)
    first, second = (Probe(outputs=("mask",), depth=25, namespace="/counted_apart") for _ in range(2))
    assert node.input_sub.topic_name == "/counted_apart/image" and first.image_pub.topic_name == "/counted_apart/image"
    with spinning(node, first, second):
        # Matched on both sides before the first frame: a frame sent while only the writer has matched the
        # reader is not delivered (the graph's publisher count, checked before, can be ahead of both).
        assert wait_for(lambda: node.input_sub.get_publisher_count() == 2, timeout=30)
        assert wait_for(lambda: all(p.image_pub.get_subscription_count() == 1 for p in (first, second)), timeout=30)
        for index in range(25):
            first.image_pub.publish(make_image_msg(RGB, "rgb8", stamp=(300, index)))
            second.image_pub.publish(make_image_msg(RGB, "rgb8", stamp=(400 + index, 0)))
            time.sleep(0.05)
        assert wait_for(lambda: node.stats.received == 50, timeout=30), node.stats.received
        assert node.stats.gaps.lost == 0 and len(node.stats.gaps.streams) == 2
    for probe in (first, second):
        probe.destroy_node()
    node.destroy_node()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_transport_gaps_per_publisher(data: Any) -> None:
    """Skipped sequence numbers: exact per GID; without GIDs exact for lossless publishers in any interleaving
    and for one lossy publisher."""
    from semseg_ros.ros.diagnostics import TransportGaps

    publishers = data.draw(st.integers(1, 4))
    lossy = data.draw(st.booleans())
    with_gid = data.draw(st.booleans())
    if lossy and not with_gid:
        publishers = 1
    streams = []
    for _ in range(publishers):
        length = data.draw(st.integers(1, 30))
        kept = [s for s in range(1, length + 1) if not lossy or s == 1 or data.draw(st.booleans())]
        streams.append(kept)
    labels = data.draw(st.permutations([p for p, kept in enumerate(streams) for _ in kept]))  # any interleaving
    pending = [iter(kept) for kept in streams]  # each publisher's own order
    merged = [(p, next(pending[p])) for p in labels]
    gaps = TransportGaps()
    for publisher, sequence in merged:
        info: dict[str, Any] = {"publication_sequence_number": sequence}
        if with_gid:
            info["publisher_gid"] = [publisher] * 24
        gaps.add(info, lambda: publishers)
    assert gaps.lost == sum(kept[-1] - len(kept) for kept in streams)


def test_params_files_rcl_accepts_run_pip_only_and_typos_are_warned(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`/**` wildcards, use_sim_time and a typo: `semseg node` starts (as `ros2 run` does) and names the typo."""
    params = tmp_path / "wild.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"use_sim_time": False, "start_type_description_service": True}},
                "/**/segmentation_node": {
                    "ros__parameters": {"model": str(tiny_checkpoint), "backend": "torch", "warmup_runs": 0, "overlay_alpah": 0.3}
                },
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "semseg_ros", "node", "segmentation", "--params", str(params)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    for line in process.stdout or []:
        lines.append(line)
        if "ready:" in line:
            break
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=30)
    output = "".join(lines) + rest
    assert process.returncode == 0 and "ready:" in output, output
    assert "parameter overlay_alpah is given but no semseg_ros node declares it; ignored (did you mean overlay_alpha?)" in output


def test_diagnostics_keep_coming_while_sim_time_stands_still(ros: Any, tiny_checkpoint: Path) -> None:
    node, probe = make_node(tiny_checkpoint, use_sim_time=True), Probe(outputs=("mask",))
    with spinning(node, probe):
        assert wait_for(lambda: sum(d.status[0].name.endswith("segmentation_node") for d in probe.diagnostics) >= 4, timeout=10)
    node.destroy_node()
    probe.destroy_node()
