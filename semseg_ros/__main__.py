"""`python -m semseg_ros` is the `semseg` command."""

import sys

from semseg_ros.cli import main

sys.exit(main())
