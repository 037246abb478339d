"""Fixtures shared by every layer of tests.

The cluster fixtures never skip: when the control plane cannot be built or started, every test that
needs it errors with the reason. Under CI, a run with any skipped test fails as a whole.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from modelrollout.testing.cluster import Binaries, LocalCluster
from modelrollout.testing.helm import Helm
from modelrollout.testing.podserver import images
from modelrollout.testing.prometheus import PrometheusPool
from modelrollout.testing.traefik import Traefik, locate
from modelrollout.testing.webhooks import Receiver

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def controlplane_binaries() -> Binaries:
    return Binaries.locate()


@pytest.fixture(scope="session")
def cluster(controlplane_binaries: Binaries) -> Iterator[LocalCluster]:
    # with a process node: pods that ask for it (kubelet.PLACEMENT) run the test images
    local = LocalCluster(controlplane_binaries, images=images())
    local.start()
    marker = str(local.workdir)
    yield local
    local.stop()
    assert local.leftovers(marker) == [], "the local cluster left processes or files behind"


@pytest.fixture(scope="session")
def modelrollout_crd(cluster: LocalCluster) -> None:
    """The generated ModelRollout CRD, installed and Established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    cluster.established("modelrollouts.modelrollout.io")


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def gateway(cluster: LocalCluster) -> Iterator[Traefik]:
    """Traefik, the Gateway API implementation, in the data plane's network namespace."""
    with Traefik(locate(), cluster.kubeconfig, cluster.network) as running:
        yield running
    assert running.leftovers() == [], "Traefik left a process or files behind"


@pytest.fixture
def prometheus() -> Iterator[PrometheusPool]:
    factory = PrometheusPool()
    yield factory
    assert factory.stop_all() == [], "Prometheus left processes or files behind"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP endpoint recording the webhook notifications it gets."""
    r = Receiver()
    yield r
    r.close()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if skipped:
        reporter.write_line(f"CI: {skipped} test(s) skipped; a skipped test does not count")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def helm(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm against the local cluster; errors (never skips) when helm cannot be built."""
    return Helm.locate(tmp_path_factory.mktemp("helm-home"), cluster.kubeconfig)
