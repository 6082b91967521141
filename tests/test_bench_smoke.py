"""The benchmark's smoke run (``make bench-smoke``): every method, each as its own process, agrees with ours.

No time is asserted. The peers need the bench environment (.venv-bench: polars, pyspark, duckdb)
and PySpark needs Java; the test builds the environment with ``make bench-env`` when it can, and
only PySpark may then be skipped, by the bench and with its reason (no Java), which the test reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")


def bench_python() -> str:
    """.venv-bench's Python, built first if it is not there (pip's cache makes that a minute or two)."""
    made = subprocess.run(["make", "-s", "bench-env"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    if made.returncode != 0:
        pytest.skip(f"the bench environment could not be built (make bench-env): {made.stderr.strip()[-300:]}")
    return BENCH_PYTHON


def test_every_method_agrees_with_ours_on_a_small_file(tmp_path):
    out = tmp_path / "smoke.json"
    command = [bench_python(), "-m", "bench", "--smoke", "--data-dir", str(tmp_path), "--output", str(out)]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["agreement"]["ok"], report["per_round"][0]["agreement"]
    ran = set(report["summary"])
    assert ran | set(report["skipped"]) == {"ours", "ours-api", "polars", "pandas", "duckdb", "blog", "spark"}
    assert {"ours", "ours-api", "polars", "pandas", "duckdb", "blog"} <= ran, report["skipped"]
    for name, reason in report["skipped"].items():
        warnings.warn(f"bench smoke: {name} skipped: {reason}")
    assert report["questions"] > 3000
    assert set(report["ratios"]) == ran - {"ours"}
    phases = report["summary"]["ours"]["phases"]
    assert {"imports", "cluster start", "pass 1", "classifier", "shutdown"} <= set(phases), phases
