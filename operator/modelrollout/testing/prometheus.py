"""A real Prometheus server on a free loopback port, scraping what the caller names.

Uses the Debian package's binary (``/usr/bin/prometheus``, installed by the Makefile) unless
MODELROLLOUT_PROMETHEUS names another.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from modelrollout.testing.processes import (
    ControlPlaneError,
    ManagedProcess,
    StartStop,
    cleanup_on_error,
    exit_cleanly_on_sigterm,
    free_ports,
    http_ok,
    processes_mentioning,
)

WORKDIR_PREFIX = "modelrollout-prometheus-"


@dataclass(frozen=True)
class ScrapeJob:
    """A static scrape job: `targets` are host:port strings."""

    name: str
    targets: tuple[str, ...]
    metrics_path: str = "/metrics"

    def to_config(self) -> dict[str, object]:
        return {
            "job_name": self.name,
            "metrics_path": self.metrics_path,
            "static_configs": [{"targets": list(self.targets)}],
        }


def render_config(jobs: list[ScrapeJob], scrape_interval: str) -> str:
    """Prometheus configuration (JSON is valid YAML)."""
    return json.dumps(
        {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [job.to_config() for job in jobs],
        },
        indent=2,
    )


def prometheus_binary() -> Path:
    named = os.environ.get("MODELROLLOUT_PROMETHEUS")
    found = named or shutil.which("prometheus")
    if not found:
        raise ControlPlaneError(
            "prometheus: not installed (the Makefile installs the Debian package `prometheus`)"
        )
    return Path(found)


class PrometheusServer(StartStop):
    def __init__(
        self,
        jobs: list[ScrapeJob] | None = None,
        *,
        scrape_interval: str = "1s",
        binary: Path | None = None,
        tie_to_parent: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.jobs = list(jobs or [])
        self.scrape_interval = scrape_interval
        self.binary = binary
        self.tie_to_parent = tie_to_parent
        self.start_timeout = start_timeout
        self.workdir: Path | None = None
        self.process: ManagedProcess | None = None
        self.url = ""

    def start(self) -> None:
        binary = self.binary or prometheus_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        atexit.register(self.stop)
        exit_cleanly_on_sigterm()
        with cleanup_on_error(self.stop):
            (port,) = free_ports(1)
            self.url = f"http://127.0.0.1:{port}"
            self._config_path.write_text(render_config(self.jobs, self.scrape_interval))
            self.process = ManagedProcess(
                name="prometheus",
                argv=[
                    str(binary),
                    f"--config.file={self._config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.enable-lifecycle",
                ],
                log_path=self.workdir / "prometheus.log",
                tie_to_parent=self.tie_to_parent,
            )
            self.process.start()
            self.process.wait_until(
                lambda: http_ok(f"{self.url}/-/ready"), "ready (/-/ready)", self.start_timeout
            )
            # Ready is not scraping: target discovery reaches the scrape manager a few seconds
            # later. Tests that judge a canary every second must not start before the first
            # scrape, or they see no series at all (NoData) for reasons of the harness.
            self.process.wait_until(self._scraped_every_target, "scraping every target once",
                                    self.start_timeout)  # fmt: skip

    def _scraped_every_target(self) -> bool:
        targets = sum(len(job.targets) for job in self.jobs)
        query = urllib.parse.urlencode({"query": "count(up)"})
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=2) as r:  # noqa: S310
                result = json.load(r)["data"]["result"]
        except (OSError, ValueError, KeyError):
            return False
        seen = float(result[0]["value"][1]) if result else 0.0
        return seen >= targets

    def pause(self) -> None:
        """Stop the server but keep its port and data, to stage an outage."""
        if self.process is not None:
            self.process.stop()

    def resume(self) -> None:
        """Start the paused server again on the same port, with the same data."""
        if self.process is None:
            raise ControlPlaneError("prometheus was never started")
        self.process.start()
        self.process.wait_until(
            lambda: http_ok(f"{self.url}/-/ready"), "ready (/-/ready)", self.start_timeout
        )

    def set_jobs(self, jobs: list[ScrapeJob]) -> None:
        """Replace the scrape jobs and reload the configuration in place."""
        self.jobs = list(jobs)
        self._config_path.write_text(render_config(self.jobs, self.scrape_interval))
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if response.status != 200:
                raise ControlPlaneError(f"prometheus: reload answered {response.status}")

    def stop(self) -> None:
        if self.workdir is None:
            return
        if self.process is not None:
            self.process.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None
        atexit.unregister(self.stop)

    @property
    def _config_path(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("prometheus is not started")
        return self.workdir / "prometheus.yml"


class PrometheusPool:
    """Servers started for one test, stopped together; `stop_all` reports what they left."""

    def __init__(self) -> None:
        self._started: list[tuple[PrometheusServer, str]] = []

    def __call__(self, jobs: list[ScrapeJob], scrape_interval: str = "1s") -> PrometheusServer:
        server = PrometheusServer(jobs, scrape_interval=scrape_interval)
        server.start()
        self._started.append((server, str(server.workdir)))
        return server

    def stop_all(self) -> list[str]:
        leftovers = []
        for server, marker in self._started:
            server.stop()
            leftovers += [f"prometheus {pid} still running" for pid in processes_mentioning(marker)]
            if Path(marker).exists():
                leftovers.append(f"{marker} still exists")
        self._started = []
        return leftovers
