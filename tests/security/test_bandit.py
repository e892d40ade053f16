"""Bandit over portal/: no finding of high severity (`bandit -r portal -lll`)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bandit_finds_nothing_of_high_severity():
    proc = subprocess.run(  # noqa: S603 — our interpreter, fixed arguments
        [sys.executable, "-m", "bandit", "-r", "portal", "-lll", "-q", "-f", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.stdout.strip(), f"bandit did not run (is it installed? make install):\n{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    assert report["metrics"]["_totals"]["loc"] > 1000  # it really read the portal
    assert not report["errors"], report["errors"]
    findings = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]]
    assert not findings, "\n".join(findings)
    assert proc.returncode == 0, proc.stderr[-2000:]
