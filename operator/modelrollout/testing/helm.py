"""Helm, built from its Go module by hack/build-helm.sh, run against a local cluster."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelrollout.testing.processes import ControlPlaneError

BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "build-helm.sh"


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # helm's cache, config and data: kept out of the user's own
    kubeconfig: Path | None = None

    @classmethod
    def locate(cls, home: Path, kubeconfig: Path | None = None) -> Helm:
        """The helm named by MODELROLLOUT_HELM, else the cached build (built if cold)."""
        named = os.environ.get("MODELROLLOUT_HELM")
        if named:
            path = Path(named)
        else:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise ControlPlaneError(f"building helm failed:\n{result.stderr[-3000:]}")
            path = Path(result.stdout.strip().splitlines()[-1])
        if not os.access(path, os.X_OK):
            raise ControlPlaneError(f"helm: no executable at {path}")
        return cls(path, home, kubeconfig)

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 180) -> subprocess.CompletedProcess[str]:  # fmt: skip
        config = [f"--kubeconfig={self.kubeconfig}"] if self.kubeconfig else []
        result = subprocess.run(
            [str(self.binary), *config, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "HELM_CACHE_HOME": str(self.home / "cache"),
                 "HELM_CONFIG_HOME": str(self.home / "config"),
                 "HELM_DATA_HOME": str(self.home / "data")},
        )  # fmt: skip
        if check and result.returncode != 0:
            raise ControlPlaneError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result
