"""A stand-in model server's metrics, set by a test: an error rate per model version."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from modelrollout.testing.processes import free_ports


class ErrorRateExporter:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.error_rate = Gauge(
            "model_error_rate", "share of failed requests", ["version"], registry=self.registry
        )
        (self.port,) = free_ports(1)
        self.server, self.thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
