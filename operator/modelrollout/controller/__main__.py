"""`modelrollout-operator` (or `python -m modelrollout.controller`): run the operator against the
in-cluster config or the current kubeconfig. Settings come from the environment (the chart sets
them from its values); `--help` lists them."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import sys

from modelrollout.api.settings import LIVENESS, NAMESPACES, SETTINGS


def usage() -> argparse.ArgumentParser:
    lines = [f"  {s.name:<30} {s.what} (default: {s.default or 'unset'})" for s in SETTINGS]
    return argparse.ArgumentParser(
        prog="modelrollout-operator",
        description=(__doc__ or "").splitlines()[0],
        epilog="settings (environment variables):\n" + "\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _few_arenas() -> None:
    """Two malloc arenas instead of glibc's eight per core: the scheduler's and kopf's threads
    would each grow their own, and a long-running operator's resident memory with them."""
    with contextlib.suppress(OSError):  # not glibc: nothing to tune
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


M_ARENA_MAX = -8  # glibc's mallopt parameter


def main(argv: list[str] | None = None) -> int:
    """Cluster-wide by default; MODELROLLOUT_NAMESPACES (comma-separated) limits the operator to
    those namespaces, which is what the chart's namespaced mode (Roles, no ClusterRole) needs."""
    usage().parse_args(sys.argv[1:] if argv is None else argv)  # --help prints and exits
    _few_arenas()
    # The operator talks to the API server through kopf and its own client (k8s/rest.py). kopf
    # imports the official client, if installed, only to log in through it: 16 MiB of memory for
    # nothing. Without it kopf logs in from the ServiceAccount or the kubeconfig itself.
    sys.modules["kubernetes"] = None  # type: ignore[assignment]
    import kopf  # noqa: PLC0415  (after --help: printing usage needs no cluster client)

    from modelrollout.controller import handlers, logs  # noqa: F401, PLC0415  (registers handlers)

    kopf.configure(verbose=False)
    logs.quiet_outages()
    namespaces = [n.strip() for n in str(NAMESPACES).split(",")]
    namespaces = [n for n in namespaces if n]
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=str(LIVENESS) or None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
