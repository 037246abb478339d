"""Helm, built from its Go module by hack/build-helm.sh, run against a local cluster."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelrollout.testing.processes import ControlPlaneError, built


@dataclass(frozen=True)
class Helm:
    binary: Path
    home: Path  # helm's cache, config and data: kept out of the user's own
    kubeconfig: Path | None = None

    @classmethod
    def locate(cls, home: Path, kubeconfig: Path | None = None) -> Helm:
        """The helm named by MODELROLLOUT_HELM, else the cached build (built if cold)."""
        return cls(built("helm", "MODELROLLOUT_HELM", "build-helm.sh"), home, kubeconfig)

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
