"""The benchmark's smoke run (``make bench-smoke``): the three methods run and agree on a tiny file.

No time is asserted. ~100 test questions cannot resolve ±0.01 of accuracy, so the tolerance is
0.05 here; the real benchmark keeps ±0.01.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_smoke_methods_agree(tmp_path):
    out = tmp_path / "smoke.json"
    command = [sys.executable, "-m", "bench", "--size", "2MB", "--rounds", "1", "--no-limits", "--shared-cluster",
               "--accuracy-tolerance", "0.05", "--data-dir", str(tmp_path), "--output", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["agreement"]["ok"], report["per_round"][0]["agreement"]
    assert set(report["summary"]) == {"blog", "pandas", "ours"}
    assert report["questions"] > 500
    assert report["ratio_vs_blog"] > 0 and report["ratio_vs_pandas"] > 0
    assert "ratio_vs_blog" in report["ratios"] and len(report["per_round"]) == 1
