"""Measuring threshold signals against a real Prometheus, and judging what comes back."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelrollout.analysis.prometheus import Prometheus
from modelrollout.api.v1alpha1 import ThresholdSignal
from modelrollout.domain.kinds.threshold import judge_threshold
from modelrollout.testing.cluster import wait_for
from modelrollout.testing.processes import free_ports
from modelrollout.testing.prometheus import PrometheusPool, ScrapeJob

pytestmark = pytest.mark.prometheus
AT = "2026-11-24T10:00:00Z"


@pytest.fixture
def source(prometheus: PrometheusPool) -> Iterator[Prometheus]:
    registry = CollectorRegistry()
    rate = Gauge("model_error_rate", "errors", ["version"], registry=registry)
    rate.labels(version="v1").set(0.002)
    rate.labels(version="v2").set(0.05)
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    running = prometheus([ScrapeJob("models", (f"127.0.0.1:{port}",))])
    measured = Prometheus(running.url, timeout="5s")
    assert wait_for(lambda: measured.measure("count(model_error_rate)").value == 2, timeout=30)
    yield measured
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def judge(source: Prometheus, query: str, signal: ThresholdSignal) -> str:
    return judge_threshold("error-rate", signal, source.measure(query), AT).verdict


def test_a_value_within_bounds_passes_and_one_beyond_fails(source: Prometheus) -> None:
    bound = ThresholdSignal(query="q", max=0.01)
    assert judge(source, 'model_error_rate{version="v1"}', bound) == "Pass"
    assert judge(source, 'model_error_rate{version="v2"}', bound) == "Fail"
    assert source.measure('model_error_rate{version="v1"}').value == 0.002


def test_no_series_is_no_data_and_several_are_an_error(source: Prometheus) -> None:
    bound = ThresholdSignal(query="q", max=0.01)
    assert judge(source, 'model_error_rate{version="v9"}', bound) == "NoData"
    several = source.measure("model_error_rate")
    assert several.error is not None
    assert "2 series" in several.error


def test_a_bad_query_is_an_error_not_a_number(source: Prometheus) -> None:
    broken = source.measure("sum(rate(model_error_rate[")
    assert broken.error is not None
    assert broken.value is None


def test_an_unreachable_prometheus_is_an_error_naming_it() -> None:
    (port,) = free_ports(1)  # nothing listens there
    source = Prometheus(f"http://127.0.0.1:{port}", timeout="2s")
    measured = source.measure("up")
    assert measured.error is not None
    assert f"127.0.0.1:{port}" in measured.error
    assert (
        judge_threshold("up", ThresholdSignal(query="up", min=1), measured, AT).verdict == "Error"
    )


# What a Prometheus behind a proxy, or one that timed out part of a query, can answer: HTTP 200,
# "status": "error", and a data block holding a stale 0 (issue 20: the canary was promoted on it).
ERROR_BODY = (
    b'{"status":"error","errorType":"execution","error":"query timed out in expression'
    b' evaluation","data":{"resultType":"vector","result":[{"metric":{},'
    b'"value":[1764669600,"0"]}]}}'
)


@pytest.fixture
def erring() -> Iterator[str]:
    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(ERROR_BODY)))
            self.end_headers()
            self.wfile.write(ERROR_BODY)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_an_answer_whose_status_is_error_is_an_error_never_its_stale_data(erring: str) -> None:
    source = Prometheus(erring, timeout="5s")
    measured = source.measure("sum(rate(model_errors_total[1m]))")
    assert measured.value is None
    assert measured.error is not None
    assert "status 'error'" in measured.error
    assert "query timed out" in measured.error
    bound = ThresholdSignal(query="q", max=0.01)
    assert judge_threshold("error-rate", bound, measured, AT).verdict == "Error"
    now = datetime.now(UTC)
    counted = source.increases("model_requests_total", now - timedelta(minutes=5), now)
    assert counted.error is not None
    assert "status 'error'" in counted.error
