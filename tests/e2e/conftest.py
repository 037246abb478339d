"""End-to-end fixtures: the operator as a process, model telemetry Prometheus scrapes, and the
story on the real data plane (`story`: Traefik serves the test's Gateway; a module that needs no
gateway overrides it with its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelrollout.testing.cluster import LocalCluster
from modelrollout.testing.exporter import ErrorRateExporter
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.prometheus import PrometheusPool, PrometheusServer, ScrapeJob, built
from modelrollout.testing.stories import Story
from modelrollout.testing.traefik import Traefik

PERIOD_SECONDS = "5"


@pytest.fixture
def telemetry() -> Iterator[ErrorRateExporter]:
    t = ErrorRateExporter()
    yield t
    t.close()


@pytest.fixture
def metrics(prometheus: PrometheusPool, telemetry: ErrorRateExporter) -> PrometheusServer:
    return prometheus([ScrapeJob("models", (telemetry.target,))])


@pytest.fixture
def operator(cluster: LocalCluster, modelrollout_crd: None) -> Iterator[OperatorProcess]:
    # Prometheus scrapes every second here: compare arms within 5-second periods (production
    # default 60 s against 15-30 s scrapes), so the e2e stories exercise the strata.
    running = OperatorProcess(cluster.kubeconfig, tick_seconds=0.5,
                              env={"MODELROLLOUT_PERIOD_SECONDS": PERIOD_SECONDS})  # fmt: skip
    running.start()
    yield running
    running.close()


@pytest.fixture
def story(cluster: LocalCluster, namespace: str, operator: OperatorProcess,
          gateway: Traefik) -> Story:  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
    return Story(cluster, namespace, operator)


@pytest.fixture
def host(namespace: str) -> str:
    """The hostname the test's routes serve (Traefik serves every test's Gateway at once)."""
    return f"{namespace}.test"


@pytest.fixture
def pods_metrics(cluster: LocalCluster, prometheus: PrometheusPool) -> PrometheusServer:
    return prometheus([cluster.pods_job()], network=cluster.network, binary=built())
