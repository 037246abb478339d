"""The harness fails clearly and leaves nothing behind, whatever goes wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from modelrollout.testing.cluster import Binaries, LocalCluster
from modelrollout.testing.processes import (
    ControlPlaneError,
    http_ok,
    pid_alive,
    processes_mentioning,
)
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.traefik import locate


def _binaries_with(tmp_path: Path, real: Binaries, replace: dict[str, str]) -> Binaries:
    """A copy of the real build, with some binaries swapped for shell scripts (or missing)."""
    root = tmp_path / "build"
    (root / "bin").mkdir(parents=True)
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                 "kubectl", "kwok"):  # fmt: skip
        target = root / "bin" / name
        if name not in replace:
            target.symlink_to(real.bin(name))
        elif replace[name]:
            target.write_text(f"#!/bin/sh\n{replace[name]}\n")
            target.chmod(0o755)
    (root / "kwok-stages").symlink_to(real.kwok_stages)
    return Binaries(root)


def _nothing_left(workdirs: Path) -> None:
    assert list(workdirs.iterdir()) == [], "the work directory was not removed"
    assert processes_mentioning(str(workdirs)) == [], "a process outlived the failed start"


def test_missing_binary_is_named(tmp_path: Path, controlplane_binaries: Binaries) -> None:
    binaries = _binaries_with(tmp_path, controlplane_binaries, {"kube-apiserver": ""})
    workdirs = tmp_path / "run"
    workdirs.mkdir()
    cluster = LocalCluster(binaries, workdir_parent=workdirs)
    with pytest.raises(
        ControlPlaneError, match=r"kube-apiserver: no executable at .*/kube-apiserver"
    ):
        cluster.start()
    _nothing_left(workdirs)


def test_binary_that_exits_is_reported_at_once_not_after_a_hang(
    tmp_path: Path, controlplane_binaries: Binaries
) -> None:
    binaries = _binaries_with(
        tmp_path, controlplane_binaries,
        {"kube-apiserver": "echo 'flag provided but not defined: --nonsense' >&2; exit 3"},
    )  # fmt: skip
    workdirs = tmp_path / "run"
    workdirs.mkdir()
    cluster = LocalCluster(binaries, workdir_parent=workdirs, start_timeout=300)
    started = time.monotonic()
    with pytest.raises(ControlPlaneError) as failure:
        cluster.start()
    message = str(failure.value)
    assert "kube-apiserver exited with code 3" in message
    assert "flag provided but not defined" in message, "the log's tail belongs in the error"
    assert time.monotonic() - started < 60, "an exited process must not wait for the timeout"
    _nothing_left(workdirs)


def test_prometheus_with_a_broken_binary_fails_clearly(tmp_path: Path) -> None:
    broken = tmp_path / "prometheus"
    broken.write_text("#!/bin/sh\necho 'no such flag' >&2\nexit 1\n")
    broken.chmod(0o755)
    server = PrometheusServer([], binary=broken)
    with pytest.raises(ControlPlaneError, match="prometheus exited with code 1"):
        server.start()
    assert server.workdir is None


def test_cluster_up_and_down_from_the_shell(
    tmp_path: Path, controlplane_binaries: Binaries
) -> None:
    state = tmp_path / "cluster.json"
    env = {**os.environ, "MODELROLLOUT_CONTROLPLANE": str(controlplane_binaries.root),
           "MODELROLLOUT_TRAEFIK": str(locate())}  # fmt: skip
    command = [sys.executable, "-m", "modelrollout.testing", "--state", str(state)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *args], env=env, capture_output=True, text=True,
                              timeout=180, check=False)  # fmt: skip

    # Given `up` has returned
    up = run("up")
    assert up.returncode == 0, up.stderr
    export = up.stdout.strip()
    assert export.startswith("export KUBECONFIG=")
    saved = json.loads(state.read_text())
    try:
        # Then the cluster it started outlives it and answers with that kubeconfig
        nodes = subprocess.run(
            [str(controlplane_binaries.kubectl), "get", "nodes", "-o", "name"],
            env={**env, "KUBECONFIG": export.split("=", 1)[1]},
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert nodes.stdout.split() == ["node/kwok-node-0", "node/kwok-node-1",
                                        "node/process-node"]  # fmt: skip
        # And its gateway answers (Traefik's 404: no route yet), its Prometheus is ready
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(saved["gateway"], timeout=5)  # noqa: S310
        assert http_ok(f"{saved['prometheus']}/-/ready")
        assert "gateway" in up.stderr
        assert run("status").returncode == 0
    finally:
        # When `down` runs
        down = run("down")
    # Then every process it started is gone, with its files and the state
    assert down.returncode == 0, down.stderr
    assert processes_mentioning(saved["workdir"]) == []
    assert not any(pid_alive(int(p)) for p in saved["pids"].values())
    assert not Path(saved["workdir"]).exists()
    assert not state.exists()
    assert run("status").returncode == 1


def test_a_harness_user_stopped_with_sigterm_leaves_nothing_behind(tmp_path: Path) -> None:
    # Given a program that started Prometheus through the harness and is still running
    script = (
        "import time\n"
        "from modelrollout.testing.prometheus import PrometheusServer\n"
        "server = PrometheusServer([])\n"
        "server.start()\n"
        "print(server.workdir, flush=True)\n"
        "time.sleep(120)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as program:
        assert program.stdout is not None
        workdir = program.stdout.readline().strip()
        assert Path(workdir).is_dir()
        # When it is stopped with SIGTERM (as pkill or a CI timeout would)
        program.terminate()
        assert program.wait(timeout=30) == 143
    # Then its Prometheus is gone and so is its work directory
    assert processes_mentioning(workdir) == []
    assert not Path(workdir).exists()
