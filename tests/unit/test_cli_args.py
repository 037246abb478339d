"""The command line as a user types it: flags anywhere, and `status` exit codes a pipeline can
gate on."""

from __future__ import annotations

from typing import Any

import pytest

from modelrollout.cli.main import HEALTHY, UNHEALTHY, _done, main, parser, verdict


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "fraud", "-n", "ml"],
        ["-n", "ml", "status", "fraud"],
        ["status", "-n", "ml", "fraud", "--context", "prod"],
        ["promote", "fraud", "--namespace", "ml"],
    ],
)
def test_global_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert args.namespace == "ml"
    assert args.name == "fraud"


def body(phase: str, *, degraded: bool = False, canary: bool = False,
         seen: bool = True) -> dict[str, Any]:  # fmt: skip
    conditions = [{"type": "Degraded", "status": "True" if degraded else "False"}]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions,
                              "observedGeneration": 3 if seen else 2}  # fmt: skip
    if canary:
        status["canary"] = {"revision": "r2", "version": "v2"}
    return {"metadata": {"generation": 3}, "status": status}


def test_status_exits_non_zero_on_a_rollback_or_degraded() -> None:
    assert verdict(body("Promoted")) == HEALTHY
    assert verdict(body("Paused", canary=True)) == HEALTHY
    assert verdict(body("RolledBack", degraded=True, canary=True)) == UNHEALTHY
    assert verdict(body("Progressing", degraded=True, canary=True)) == UNHEALTHY


def test_a_rollout_is_at_rest_once_its_latest_spec_is_promoted_or_it_rolled_back() -> None:
    assert _done(body("Promoted"))
    assert not _done(body("Promoted", seen=False))  # the new spec is not acted on yet
    assert not _done(body("Progressing", canary=True))
    assert not _done(body("Paused", canary=True))
    assert _done(body("RolledBack", canary=True))


def test_version_needs_no_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("modelrollout ")


def test_a_timeout_that_is_not_a_duration_is_refused(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Any) -> None:  # fmt: skip
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    argv = ["status", "fraud", "--timeout", "soon", "--kubeconfig", str(kubeconfig)]
    assert main(argv) == 1
    assert "soon" in capsys.readouterr().err
