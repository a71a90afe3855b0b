"""The performance harness runs end to end in its quick mode (CI's smoke run).

It asserts that every scenario ran and measured something, never how fast: speed on a shared
CI machine says little. The full run and its figures are in README, "Performance".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


# The harness has its own limit; past the suite's 300 s a timeout would stop the whole run.
@pytest.mark.timeout(900)
def test_the_quick_run_measures_every_scenario_and_writes_both_reports(
    postgres_server_url: str, redis_server_url: str, mongodb_server_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SHOP_TEST_DATABASE_URL": postgres_server_url,
        "SHOP_TEST_REDIS_URL": redis_server_url,
        "SHOP_TEST_MONGODB_URL": mongodb_server_url,
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests/perf/harness.py"), "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=840, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    scenarios = {scenario["key"]: scenario for scenario in report["scenarios"]}
    assert set(scenarios) == {
        "g", "m1", "m2", "a", "b1", "b2", "b3", "c", "d", "h", "c0", "d0", "h0", "f", "e",
        "t", "g2", "i", "i1",
    }  # fmt: skip
    # Each load scenario ran its steps and the service answered every request as it should.
    # Whether a step stays under the latency bound (the knee), or a request under the
    # generator's 10 s timeout, is speed, which a busy machine decides.
    for key in ("g", "a", "b1", "b2", "b3", "c", "d", "h", "c0", "d0", "h0"):
        steps = scenarios[key]["steps"]
        assert steps, key
        assert all(step["achieved_rate"] > 0 for step in steps), (key, steps)
        wrong = [w for s in steps for w in s.get("error_samples", {}) if w.startswith("HTTP")]
        assert wrong == [], (key, steps)
    for key in ("m1", "m2", "g2"):  # the stores' own ceilings were measured
        assert scenarios[key]["knee"]["achieved_rate"] > 0, key
    drained = scenarios["f"]["knee"]
    assert drained["events"] > 0  # c, d and h left events for the worker
    assert drained["achieved_rate"] > 0
    for key in ("i", "i1"):  # the backbone alone, a transaction per batch and per event
        alone = scenarios[key]["knee"]
        assert alone["events"] > 0, key
        assert alone["achieved_rate"] > 0, key
    # Every write route was measured beside its control, and the ratio reported.
    goals = {goal["name"]: goal for goal in report["goals"]}
    for key in ("c", "d", "h"):
        ratio = next(g for name, g in goals.items() if name.startswith(f"write {key}:"))
        assert ratio["value"] is not None, ratio
    checkout = scenarios["e"]["steps"][0]
    assert checkout["outcomes"].get("confirmed", 0) > 0  # confirm -> confirmed was seen
    assert checkout["never_visible"] == 0
    # Tracing on: its cost was measured, and the checkouts' traces reached the collector
    # whole, every hop of the chain found.
    traced = scenarios["t"]["notes"]
    assert traced["cost"]["api_cpu_ms_on"] > 0
    assert traced["complete"] > 0
    assert {hop["hop"] for hop in traced["hops"]} >= {"confirm request", "order view projection"}
    assert {"api", "worker"} <= set(report["exit_codes"])
    assert set(report["exit_codes"].values()) == {0}, report["exit_codes"]
    assert "| a: GET /health/live |" in (tmp_path / "results.md").read_text()
    # Each scenario was kept as it ended, so a run cut short keeps what it measured.
    kept = json.loads((tmp_path / "partial-results.json").read_text())
    assert [s["key"] for s in kept] == [s["key"] for s in report["scenarios"]]
