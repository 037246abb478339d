"""Counter increases since a moment, read from a real Prometheus: resets, new series, grouping;
and a drift reference frozen from them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelrollout.analysis.prometheus import Prometheus
from modelrollout.cli.main import main
from modelrollout.domain.reference import decode, histogram_counts
from modelrollout.telemetry import Telemetry
from modelrollout.testing.cluster import wait_for
from modelrollout.testing.processes import free_ports
from modelrollout.testing.prometheus import PrometheusPool, ScrapeJob
from modelrollout.testing.traffic import AMOUNT_EDGES

pytestmark = pytest.mark.prometheus


def test_increases_handle_resets_and_series_born_later(prometheus: PrometheusPool) -> None:
    registry = CollectorRegistry()
    # A gauge lets the test move the "counter" down, as a restarted pod's counter does.
    events = Gauge("app_events_total", "events", ["version", "le"], registry=registry)
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        running = prometheus([ScrapeJob("app", (f"127.0.0.1:{port}",))])
        source = Prometheus(running.url, timeout="5s")
        seen = 'app_events_total{version="v1",le="+Inf"}'

        def scraped(value: float) -> bool:
            return source.measure(seen).value == value

        events.labels(version="v1", le="+Inf").set(5)
        events.labels(version="v1", le="1").set(2)
        assert wait_for(lambda: scraped(5), timeout=30)
        time.sleep(1.5)
        since = datetime.now(UTC)
        time.sleep(1.5)
        for value in (12, 2, 6):  # grows by 7, resets, grows to 6: 13 since `since`
            events.labels(version="v1", le="+Inf").set(value)
            assert wait_for(lambda v=value: scraped(v), timeout=30)  # type: ignore[misc]
        events.labels(version="v2", le="+Inf").set(4)  # born after `since`: counts from zero
        assert wait_for(lambda: source.measure('app_events_total{version="v2"}').value == 4,
                        timeout=30)  # fmt: skip
        now = datetime.now(UTC)

        total = source.increases('app_events_total{le="+Inf"}', since, now)
        assert total.error is None
        assert total.by == {"": 17.0}
        by_version = source.increases('app_events_total{le="+Inf"}', since, now, by="version")
        assert by_version.by == {"v1": 13.0, "v2": 4.0}
        by_le = source.increases('app_events_total{version="v1"}', since, now, by="le")
        assert by_le.by == {"+Inf": 13.0, "1": 0.0}
        broken = source.increases("sum(app_events_total)", since, now)
        assert broken.error is not None
        assert "Prometheus at" in broken.error
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_reference_is_frozen_from_what_prometheus_counted(
    prometheus: PrometheusPool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry = Telemetry(features={"amount": AMOUNT_EDGES}, registry=CollectorRegistry())
    (port,) = free_ports(1)
    telemetry.serve(port, addr="127.0.0.1")
    try:
        running = prometheus([ScrapeJob("model", (f"127.0.0.1:{port}",))])
        source = Prometheus(running.url, timeout="5s")
        stable = telemetry.model("fraud", "v1")
        amounts = np.random.default_rng(3).lognormal(4, 1, 3000)
        selector = 'model_feature_value_bucket{model="fraud",version="v1",feature="amount"}'
        for amount in amounts[:1000]:  # before the window: not in the reference
            stable.inputs({"amount": float(amount)})
        assert wait_for(lambda: source.measure(f'{selector[:-1]},le="+Inf"}}').value == 1000,
                        timeout=30)  # fmt: skip
        time.sleep(1.5)
        start = datetime.now(UTC)
        time.sleep(1.5)
        for amount in amounts[1000:]:
            stable.inputs({"amount": float(amount)})
        assert wait_for(lambda: source.measure(f'{selector[:-1]},le="+Inf"}}').value == 3000,
                        timeout=30)  # fmt: skip
        until = datetime.now(UTC).isoformat()
        since = f"{(datetime.now(UTC) - start).total_seconds():.3f}s"
        out = tmp_path / "reference.yaml"
        code = main(["reference", "amounts", "--prometheus", running.url, "--selector", selector,
                     "--since", since, "--until", until, "-o", str(out)])  # fmt: skip
        assert code == 0, capsys.readouterr().err
        frozen = decode(yaml.safe_load(out.read_text())["data"]["reference.json"])
        assert frozen == histogram_counts(amounts[1000:], AMOUNT_EDGES)
    finally:
        telemetry.close()
