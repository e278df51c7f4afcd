"""`python -m semseg_ros` and the `semseg` console script."""

import sys
from contextlib import nullcontext

from semseg_ros import stop_signals


def main() -> int:
    """`semseg COMMAND ...`. For the commands that run ROS nodes, Ctrl-C is a quiet stop from this line on,
    before numpy, cv2 and the rest are imported (semseg_ros.stop_signals)."""
    runs_nodes = len(sys.argv) > 1 and sys.argv[1] in stop_signals.NODE_COMMANDS
    with stop_signals.remembering(at_exit=True) if runs_nodes else nullcontext():
        from semseg_ros.cli import main as run

        return run()


if __name__ == "__main__":
    sys.exit(main())
