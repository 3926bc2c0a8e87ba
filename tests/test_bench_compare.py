"""bench/compare.py: two result files, every figure both hold, with the ratio after / before."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_two_result_files_compare_figure_by_figure(tmp_path):
    before = {
        "endpoints": {"GET /api/health/": {"rps": 2000, "p50_ms": 4.0, "statuses": {"200": 4000}}},
        "worker_rss_kib": {"before": 400000},
        "gone": 1,
    }
    after = {
        "endpoints": {"GET /api/health/": {"rps": 3000, "p50_ms": 2.0, "statuses": {"200": 4000}}},
        "worker_rss_kib": {"before": 400000},
        "new": 2,
    }
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))

    result = subprocess.run(
        [sys.executable, "-m", "bench.compare", str(tmp_path / "before.json"), str(tmp_path / "after.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    lines = {line.split("  ")[0].strip(): line.split() for line in result.stdout.splitlines()}
    assert lines["endpoints / GET /api/health/ / rps"][-3:] == ["2000.00", "3000.00", "1.50x"]
    assert lines["endpoints / GET /api/health/ / p50_ms"][-3:] == ["4.00", "2.00", "0.50x"]
    assert lines["worker_rss_kib / before"][-1] == "1.00x"
    assert "endpoints / GET /api/health/ / statuses / 200" in result.stdout  # counts are figures too
    assert "gone (before)" in result.stdout and "new (after)" in result.stdout


def test_it_says_how_to_call_it_when_not_given_two_files():
    result = subprocess.run(
        [sys.executable, "-m", "bench.compare"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "python -m bench.compare" in result.stderr
