"""The short soak of CI: bench/soak.py for 200 frames at the recorded 10 Hz, three processes, real DDS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_short_soak_accounts_for_every_frame(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "bench/soak.py"), "--frames", "200", "--rates", "1", "--drive-frames", "8", "--json", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    print("\n" + completed.stdout.splitlines()[-1])
    assert result["frames_published"] >= 200
    assert result["unaccounted"] == 0, result
    assert result["node"]["processed"] > 0 and result["node"]["failed"] == 0 and result["fusion_failed"] == 0
    assert result["clouds_fused"] > 0
    assert result["exit_codes"] == {"segmentation_node": 0, "fusion_node": 0}, result["stderr_of_failed"]
