"""`python -m modelrollout.controller`: run the operator against the current kubeconfig."""

from __future__ import annotations

import sys

import kopf

from modelrollout.controller import handlers  # noqa: F401  (registers the handlers)


def main() -> int:
    kopf.configure(verbose=False)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
