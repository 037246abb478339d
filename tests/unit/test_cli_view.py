"""What the CLI shows a person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelrollout.cli.report import ReportData, markdown
from modelrollout.cli.view import arm_rows, render_status, render_table

BODY = {
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {
        "strategy": {"steps": [{"setWeight": 25}, {"analyze": {"duration": "1m"}}]},
        "analysis": {"failureLimit": 0, "inconclusiveLimit": 3, "consecutiveErrorLimit": 4},
    },
    "status": {
        "phase": "Progressing",
        "stable": {"revision": "aaa", "version": "v1"},
        "canary": {"revision": "bbb", "version": "v2"},
        "currentStep": 1,
        "canaryWeight": 25,
        "analysis": {
            "counters": {"failed": 0, "inconclusive": 1, "consecutiveErrors": 2},
            "lastEvaluatedAt": "2026-11-24T10:00:00Z",
            "signals": [
                {"name": "error-rate", "verdict": "Pass", "value": 0.0021, "max": 0.01, "at": "x"},
                {"name": "latency", "verdict": "Error", "message": "connection refused", "at": "x"},
            ],
        },
    },
}


def test_status_shows_step_weight_and_each_signal_against_its_bound() -> None:
    text = render_status(BODY)
    assert "ml/fraud  phase Progressing  step 1/2  canary weight 25%" in text
    assert "stable  v1 (aaa)" in text
    assert "inconclusive 1/3  errors in a row 2/4" in text
    assert "error-rate           Pass             0.0021  <= 0.01" in text
    assert "latency              Error                 -  connection refused" in text


def test_list_is_a_table_with_the_printer_columns() -> None:
    lines = render_table([BODY]).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP"]
    assert lines[1].split() == ["ml", "fraud", "Progressing", "v1", "v2", "25%", "1"]


def test_status_shows_the_numbers_behind_a_statistical_verdict() -> None:
    body = {
        "metadata": {"namespace": "ml", "name": "fraud"},
        "spec": {"strategy": {"steps": [{"setWeight": 50}]}, "analysis": {"failureLimit": 0}},
        "status": {
            "phase": "Progressing",
            "analysis": {
                "signals": [
                    {"name": "accuracy", "kind": "compare", "verdict": "Pass", "value": -0.008,
                     "canary": 0.891, "stable": 0.899, "lower": -0.013, "upper": -0.003,
                     "bound": -0.03, "samples": {"canary": 7215, "stable": 7444}, "at": "t"},
                    {"name": "amount-drift", "kind": "drift", "verdict": "Fail", "value": 0.23,
                     "lower": 0.2, "upper": 0.26, "max": 0.1,
                     "samples": {"canary": 400, "stable": 900},
                     "message": "jensenShannon 0.23 in [0.2, 0.26], above max 0.1 with confidence",
                     "at": "t"},
                    {"name": "sample-ratio", "kind": "sampleRatio", "verdict": "Error",
                     "value": 0.3, "bound": 0.5, "pValue": 1e-12, "at": "t",
                     "message": "sample ratio mismatch"},
                ]
            },
        },
    }  # fmt: skip
    text = render_status(body)
    assert "canary 0.891 stable 0.899  [-0.013, -0.003] vs -0.03  n 7215/7444" in text
    assert "<= 0.1  [+0.2, +0.26] vs max +0.1  n 400/900  jensenShannon 0.23 in" in text
    assert "weight 50%" in text
    assert "p 1e-12" in text


def test_status_at_the_gate_shows_the_evidence_still_needed_and_when() -> None:
    body = {
        "metadata": {"namespace": "ml", "name": "fraud"},
        "spec": {"strategy": {"steps": [{"setWeight": 50}]}, "analysis": {}},
        "status": {
            "phase": "Progressing",
            "conditions": [{"type": "Progressing", "status": "True", "reason": "WaitingForEvidence",
                            "message": "waiting for evidence before promoting (12 min of "
                                       "gateBudget 30m left): accuracy (Inconclusive: ...)",
                            "lastTransitionTime": "t"}],
            "analysis": {"signals": [
                {"name": "accuracy", "kind": "compare", "verdict": "Inconclusive", "value": 0.0,
                 "lower": -0.02, "upper": 0.02, "bound": -0.01, "needed": 30000,
                 "expectedAt": "2026-12-03T12:30:00Z", "at": "t"}]},
        },
    }  # fmt: skip
    text = render_status(body)
    assert "holding  WaitingForEvidence: waiting for evidence before promoting (12 min" in text
    assert "needs ~30,000 more labelled requests, expected 2026-12-03T12:30:00Z" in text


def test_the_report_lists_what_is_still_undecided() -> None:
    data = ReportData("fraud", "ml", datetime(2026, 12, 3, tzinfo=UTC),
                      datetime(2026, 12, 3, 1, tzinfo=UTC), phase="Progressing",
                      needed=[("accuracy", 30000, "2026-12-03T12:30:00Z")])  # fmt: skip
    assert "| accuracy | 30,000 | 2026-12-03T12:30:00Z |" in markdown(data, "r.png")


ABN: dict[str, Any] = {
    "metadata": {"name": "fraud", "namespace": "ml"},
    "spec": {"strategy": {"steps": [{"setWeight": 50}]}},
    "status": {
        "phase": "Progressing",
        "stable": {"revision": "aaa", "version": "v1"},
        "abn": {"candidates": "c0ffee", "since": "2026-12-04T09:00:00Z", "outcome": "Winner",
                "winner": "v3", "message": "v3 wins: advantage +0.03 over the champion"},
        "arms": [
            {"version": "v1", "revision": "aaa", "role": "champion", "share": 25},
            {"version": "v2", "revision": "bbb", "role": "challenger", "share": 25,
             "state": "Lost", "estimate": 0.001, "lower": -0.01, "upper": 0.012, "pValue": 0.6},
            {"version": "v4", "revision": "ddd", "role": "challenger", "share": 0,
             "state": "Eliminated", "estimate": -0.03, "lower": -0.041, "upper": -0.019,
             "pValue": 1.0, "reason": "accuracy: canary worse than tolerated"},
            {"version": "v3", "revision": "ccc", "role": "challenger", "share": 25,
             "state": "Won", "estimate": 0.03, "lower": 0.018, "upper": 0.042, "pValue": 1e-6},
        ],
    },
}  # fmt: skip


def test_the_status_shows_the_abn_table_champion_then_winner_then_the_rest() -> None:
    shown = render_status(ABN)
    assert "A/B/n  Winner: v3 wins" in shown
    rows = [line.split()[0] for line in shown.splitlines()[shown.splitlines().index(
        next(line for line in shown.splitlines() if "A/B/n" in line)) + 1:]]  # fmt: skip
    assert rows == ["v1", "v3", "v2", "v4"]
    assert "[+0.018, +0.042]" in shown
    assert "accuracy: canary worse than tolerated" in shown


def test_the_report_carries_the_abn_table() -> None:
    data = ReportData("fraud", "ml", datetime(2026, 12, 4, tzinfo=UTC),
                      datetime(2026, 12, 4, 1, tzinfo=UTC),
                      arms=arm_rows(ABN["status"]))  # fmt: skip
    text = markdown(data, "r.png")
    assert "| v3 | challenger | 25% | Won | +0.03 | [+0.018, +0.042] | 1e-06 |  |" in text
    assert text.index("| v3 |") < text.index("| v2 |") < text.index("| v4 |")
