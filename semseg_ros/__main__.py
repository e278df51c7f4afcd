"""`python -m semseg_ros` and the `semseg` console script."""

import sys

from semseg_ros import stop_signals


def main() -> int:
    """`semseg COMMAND ...`. For the commands that run ROS nodes, Ctrl-C is a quiet stop from this line on,
    before numpy, cv2 and the rest are imported (semseg_ros.stop_signals)."""
    if len(sys.argv) > 1 and sys.argv[1] in stop_signals.NODE_COMMANDS:
        with stop_signals.remembering(at_exit=True):
            from semseg_ros.cli import main as run

            return run()
    from semseg_ros.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
