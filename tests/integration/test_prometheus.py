"""The local Prometheus is a real one: it scrapes an exporter and answers PromQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.processes import free_ports
from modelrollout.testing.prometheus import PrometheusPool, ScrapeJob

pytestmark = pytest.mark.prometheus


@pytest.fixture
def exporter() -> Iterator[tuple[str, CollectorRegistry]]:
    registry = CollectorRegistry()
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}", registry
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_prometheus_scrapes_an_exporter_and_answers_promql(
    prometheus: PrometheusPool, exporter: tuple[str, CollectorRegistry]
) -> None:
    target, registry = exporter
    # Given an exporter with a gauge and a labelled counter
    Gauge("demo_model_accuracy", "accuracy", registry=registry).set(0.925)
    requests = Counter("demo_requests", "requests", ["version"], registry=registry)
    requests.labels(version="v1").inc(30)
    requests.labels(version="v2").inc(12)
    # When Prometheus scrapes it
    server = prometheus([ScrapeJob("exporter", (target,))])
    api = PrometheusConnect(url=server.url)

    def value(query: str) -> float | None:
        result = api.custom_query(query)
        return float(result[0]["value"][1]) if result else None

    # Then PromQL returns the exported values
    assert wait_for(lambda: value("demo_model_accuracy") is not None, timeout=30)
    assert value("demo_model_accuracy") == 0.925
    assert value('demo_requests_total{version="v2"}') == 12
    assert value("sum(demo_requests_total)") == 42


def test_scrape_jobs_can_be_replaced_while_running(
    prometheus: PrometheusPool, exporter: tuple[str, CollectorRegistry]
) -> None:
    target, registry = exporter
    Gauge("demo_late_value", "value", registry=registry).set(7)
    # Given a Prometheus with no scrape jobs
    server = prometheus([])
    api = PrometheusConnect(url=server.url)
    # When a job is added by reloading the configuration
    server.set_jobs([ScrapeJob("late", (target,))])
    # Then the new target's metrics arrive
    assert wait_for(lambda: api.custom_query("demo_late_value"), timeout=30)
    assert api.custom_query('up{job="late"}')[0]["value"][1] == "1"
