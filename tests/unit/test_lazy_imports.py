"""Starting the operator loads neither numpy, scipy nor requests (issue 20: they came back at
start through the monitor's detectors and the notifications, 0.84 s and tens of MiB). They load
when a signal that needs them is judged, or a notice is sent."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "scipy", "requests", "prometheus_api_client", "pandas", "matplotlib")

START = """
import sys
sys.modules["kubernetes"] = None  # as controller/__main__.py does before importing kopf
import kopf
from modelrollout.controller import handlers, __main__
print(" ".join(name for name in {heavy!r} if name in sys.modules))
"""


def test_starting_the_operator_imports_no_numpy_scipy_or_requests() -> None:
    run = subprocess.run([sys.executable, "-c", START.format(heavy=HEAVY)], capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    assert run.stdout.split() == []


def test_the_statistics_still_load_when_a_signal_needs_them() -> None:
    check = """
import sys
from modelrollout.domain import detectors, stats
assert "numpy" not in sys.modules
stats.cs_multiplier(1000, 0.1)
print(detectors.healthy_floor(90.0, 100.0, higher_is_better=True) > 0, "scipy" in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    assert run.stdout.split() == ["True", "True"]
