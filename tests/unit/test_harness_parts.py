"""The harness's small parts, without starting a control plane."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.kubelet import Image, expand, find_image, repository
from modelrollout.testing.pki import make_pki, render_kubeconfig
from modelrollout.testing.processes import (
    ManagedProcess,
    cmdline,
    free_ports,
    pid_alive,
    processes_mentioning,
    terminate,
)
from modelrollout.testing.prometheus import ScrapeJob, render_config


def test_free_ports_are_distinct_and_unprivileged() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(1024 < p < 65536 for p in ports)


def test_kubeconfig_points_at_the_server_with_absolute_credentials(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    config = json.loads(render_kubeconfig("https://127.0.0.1:6443", pki))
    assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    user = config["users"][0]["user"]
    assert Path(user["client-certificate"]).is_absolute()
    assert config["current-context"] == config["contexts"][0]["name"]


def test_admin_certificate_is_a_system_master_valid_for_loopback(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    text = subprocess.run(
        ["openssl", "x509", "-in", str(pki.admin_cert), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "O=system:masters" in text or "O = system:masters" in text
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(pki.admin_cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_prometheus_config_lists_static_targets() -> None:
    config = json.loads(render_config([ScrapeJob("models", ("127.0.0.1:9100",))], "2s"))
    assert config["global"]["scrape_interval"] == "2s"
    assert config["scrape_configs"] == [
        {
            "job_name": "models",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": ["127.0.0.1:9100"]}],
        }
    ]


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    marker = tmp_path / "sleeper-marker"
    # The marker rides along as an argument, as the work directory does in real components.
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(marker)])
    # /proc/PID/cmdline is empty until the child has finished exec'ing
    assert wait_for(lambda: str(marker) in cmdline(process.pid), timeout=10)
    yield process
    process.kill()
    process.wait()


def test_terminate_spares_a_process_that_is_not_ours(sleeper: subprocess.Popen[bytes]) -> None:
    # A recorded pid may have been reused: without our marker in its command line it is spared.
    terminate(sleeper.pid, "/nonexistent/modelrollout-cluster-xyz", timeout=1)
    assert pid_alive(sleeper.pid)


def test_terminate_stops_our_process(sleeper: subprocess.Popen[bytes], tmp_path: Path) -> None:
    marker = str(tmp_path / "sleeper-marker")
    assert processes_mentioning(marker) == [sleeper.pid]
    terminate(sleeper.pid, marker, timeout=5)
    sleeper.wait(timeout=5)
    assert processes_mentioning(marker) == []


def test_a_process_stopped_right_after_start_is_not_left_running(tmp_path: Path) -> None:
    # Regression: stop() used to check /proc/PID/cmdline, which is empty while the child is
    # still exec'ing, and so spared a process stopped in the instant after it started.
    process = ManagedProcess(
        name="sleeper",
        argv=[sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / "sleeper.log",
    )
    process.start()
    process.stop(timeout=5)
    assert process.exit_code() is not None


def test_the_process_node_expands_references_and_matches_images_by_repository() -> None:
    assert expand("$(A)-$(B)-$$(A)-$(MISSING)", {"A": "1", "B": "2"}) == "1-2-$(A)-$(MISSING)"
    assert repository("registry:5000/team/model:v2") == "registry:5000/team/model"
    assert repository("example/echo@sha256:abc") == "example/echo"
    table = {"example/echo": Image(("serve",)), "example/echo:2": Image(("two",))}
    assert find_image(table, "example/echo:2") == Image(("two",))
    assert find_image(table, "example/echo:1") == Image(("serve",))
    assert find_image(table, "example/other:1") is None
