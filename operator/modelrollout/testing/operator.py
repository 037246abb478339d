"""The operator as a real process (`python -m modelrollout.controller`), for tests and demo."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from modelrollout.testing.processes import ManagedProcess, free_ports, tail


class OperatorProcess:
    def __init__(self, kubeconfig: Path, *, tick_seconds: float = 1.0,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.tick_seconds = tick_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="modelrollout-operator-"))
        self.process: ManagedProcess | None = None
        (self.metrics_port,) = free_ports(1)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def log_path(self) -> Path:
        return self.workdir / "operator.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "MODELROLLOUT_TICK_SECONDS": str(self.tick_seconds),
            "MODELROLLOUT_METRICS_PORT": str(self.metrics_port),
            **self.env,
        }
        self.process = ManagedProcess(
            name="operator",
            argv=[sys.executable, "-m", "modelrollout.controller"],
            log_path=self.log_path,
            env=env,
        )
        self.process.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def log(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def full_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
