"""`python -m modelrollout.controller`: run the operator against the current kubeconfig."""

from __future__ import annotations

import os
import sys

import kopf

from modelrollout.controller import handlers  # noqa: F401  (registers the handlers)


def main() -> int:
    """Cluster-wide by default; MODELROLLOUT_NAMESPACES (comma-separated) limits the operator to
    those namespaces, which is what the chart's namespaced mode (Roles, no ClusterRole) needs."""
    kopf.configure(verbose=False)
    namespaces = [n.strip() for n in os.environ.get("MODELROLLOUT_NAMESPACES", "").split(",")]
    namespaces = [n for n in namespaces if n]
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=os.environ.get("MODELROLLOUT_LIVENESS") or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
