#!/usr/bin/env bash
# Run the package under the real ROS 2 command line (ros2 launch / node / param / topic) and print what it
# shows: the checks of docs/ros2-verification.md. Needs a venv with the upstream Jazzy launch, launch_ros,
# ros2cli and rosidl_runtime_py built from source, composition_interfaces colcon-built, and this package
# colcon-built into a workspace (docs/ros2-verification.md, "Setting up"). Not part of `make test`.
#
#   tools/ros2_cli_check.sh VENV CI_WS WS OUT     e.g. /work/scratch/ros2venv /work/scratch/ciws /work/scratch/ros2ws /tmp/ros2check
VENV=${1:?venv}; CI_WS=${2:?workspace with composition_interfaces}; WS=${3:?workspace with semseg_ros}; OUT=${4:?output folder}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck disable=SC1091
source "$VENV/bin/activate"; source "$CI_WS/install/setup.bash"; source "$WS/install/setup.bash"
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-57} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST RCUTILS_COLORIZED_OUTPUT=0
mkdir -p "$OUT" && cd "$OUT" || exit 1
T="timeout 60"
run() { echo "\$ $*"; "$@" 2>&1; echo "[rc=$?]"; }
start_launch() {  # $1 log, rest: launch arguments; own process group, as a terminal's foreground job
  local log=$1; shift
  setsid ros2 launch semseg_ros kitti.launch.py "$@" > "$log" 2>&1 &
  LPID=$!
  for _ in $(seq 90); do grep -q "segmentation_node\]: ready" "$log" && grep -q "fusion_node\]: ready" "$log" && break; sleep 1; done
  sleep 2
}
stop_launch() {  # Ctrl-C: SIGINT to the whole group
  kill -INT -"$LPID"; wait "$LPID"; echo "[launch rc=$?]"
  grep -v "All log files\|Default logging" "$1"
}

echo "=== bags from the real KITTI frames (test/data/kitti_real; timestamps made up, no OXTS)"
python "$ROOT/tools/real_kitti_drive.py" "$OUT/drive" > /dev/null
rm -rf realbag && ros2 run semseg_ros semseg kitti2bag "$OUT/drive/2011_09_26/2011_09_26_drive_0000_sync" realbag
ros2 daemon stop > /dev/null 2>&1; ros2 daemon start > /dev/null

echo "=== parameters"
start_launch launch_params.log
run $T ros2 node list
run $T ros2 param get /segmentation_node model
run $T ros2 param set /segmentation_node overlay_alpha 0.3
run $T ros2 param set /segmentation_node overlay_alpha 1.5
run $T ros2 param set /segmentation_node model other.onnx
run $T ros2 param set /segmentation_node palette '[[1e400, 0, 0]]'
run $T ros2 param set /segmentation_node palette "$(python -c 'print([[1, 2, 3]] * 257)')"
run $T ros2 param set /fusion_node cluster_rules '[{"class": "car", "radius": "x"}]'
run $T ros2 param set /fusion_node cluster_rules '[{"class": "car", "radius": -1}]'
run $T ros2 param set /fusion_node cluster_rules '"{\"car\": 5}"'
run $T ros2 param set /fusion_node cluster_rules '[{"class": "car", "radius": 0.5, "min_points": 8}]'
run $T ros2 param set /fusion_node cluster_classes 'car,wheelbarrow'
run $T ros2 param set /fusion_node cluster_radius .nan
run $T ros2 param set /fusion_node slop 0.08
run $T ros2 node list
$T ros2 param dump /fusion_node > dump_fusion.yaml
$T ros2 param dump /segmentation_node > dump_segmentation.yaml
run $T ros2 param set /fusion_node slop 0.03
run $T ros2 param load /fusion_node dump_fusion.yaml
run $T ros2 param get /fusion_node slop
run $T ros2 param load /segmentation_node dump_segmentation.yaml
stop_launch launch_params.log

echo "=== topics while semseg play feeds the real frames (looped)"
start_launch launch_topics.log
setsid ros2 run semseg_ros semseg play realbag --loop > play.log 2>&1 &
PLAYER=$!
sleep 8
run timeout -s INT 15 ros2 topic hz /semseg/mask
run timeout -s INT 15 ros2 topic hz /semseg/labelled_points
run $T ros2 topic echo --once --no-arr /semseg/mask
run $T ros2 topic echo --once --no-arr /semseg/labelled_points
kill -INT -"$PLAYER"; wait "$PLAYER"; echo "[player rc=$?]"
run $T ros2 topic echo --once /diagnostics --field status
stop_launch launch_topics.log

echo "=== params_file:=my.yaml (model and use_sim_time only), with and without the launch arguments"
printf 'segmentation_node:\n  ros__parameters:\n    model: synthetic_unet_mobilenet.pt\n    use_sim_time: true\nfusion_node:\n  ros__parameters:\n    use_sim_time: true\n' > my.yaml
for args in "params_file:=my.yaml" "params_file:=my.yaml model:=camvid_unet_mobilenet.pt use_sim_time:=false"; do
  echo "--- ros2 launch semseg_ros kitti.launch.py $args"
  # shellcheck disable=SC2086
  start_launch launch_file.log $args
  run $T ros2 param get /segmentation_node model
  run $T ros2 param get /fusion_node use_sim_time
  run $T ros2 param get /fusion_node calibration_source
  stop_launch launch_file.log
done

echo "=== rviz:=true and bag:= without rviz2 / rosbag2"
run $T ros2 launch semseg_ros kitti.launch.py rviz:=true
pgrep -f "lib/semseg_ros/(segmentation|fusion)_node" || echo "no node process left"
run $T ros2 launch semseg_ros kitti.launch.py bag:=realbag
ros2 daemon stop > /dev/null
