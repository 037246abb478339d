"""`python -m modelrollout.testing up|down|status`: a local cluster for humans.

`up` starts a harness process that outlives the command: the control plane, the process node
(whose kubelet is that process), Traefik with the Gateway `public` in the default namespace, and a
Prometheus that finds annotated pods. It saves their state and prints the `export KUBECONFIG=...`
line and how to reach the gateway; `down` stops the harness, which stops everything it started.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NoReturn

from modelrollout.testing.cluster import Binaries, LocalCluster, stop_from_state
from modelrollout.testing.podserver import ECHO, images
from modelrollout.testing.processes import (
    ControlPlaneError,
    exit_cleanly_on_sigterm,
    pid_alive,
    tail,
    terminate,
)
from modelrollout.testing.prometheus import PrometheusServer, built
from modelrollout.testing.traefik import Traefik, locate

HARNESS = "modelrollout.testing"


def _state_file() -> Path:
    cache = os.environ.get("MODELROLLOUT_CACHE") or str(Path.home() / ".cache" / "modelrollout")
    return Path(cache) / "run" / "cluster.json"


def _load_state(path: Path) -> dict[str, object] | None:
    try:
        loaded: dict[str, object] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded


def _running(state: dict[str, object]) -> bool:
    pids = state.get("pids")
    return isinstance(pids, dict) and any(pid_alive(int(p)) for p in pids.values())


def _tell(state: dict[str, object]) -> None:
    print(f"export KUBECONFIG={state['kubeconfig']}")
    if state.get("gateway"):
        print(f"# gateway (Traefik, Gateway default/public): {state['gateway']}\n"
              f"# prometheus: {state['prometheus']}\n"
              f"# pods that run as processes ask for the process node; try\n"
              f"#   kubectl create deployment echo --image={ECHO}:1 --port=8080 and add the\n"
              f"#   node selector and toleration in modelrollout.testing.kubelet.PLACEMENT",
              file=sys.stderr)  # fmt: skip


def up(state_path: Path, nodes: int, timeout: float = 300) -> int:
    state = _load_state(state_path)
    if state is not None and _running(state):
        print(f"# a local cluster is already running ({state_path})", file=sys.stderr)
        _tell(state)
        return 0
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.unlink(missing_ok=True)
    log = state_path.with_suffix(".log")
    with log.open("wb") as out:
        harness = subprocess.Popen(
            [sys.executable, "-m", HARNESS, "--state", str(state_path), "--nodes", str(nodes),
             "serve"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while (state := _load_state(state_path)) is None:
        if harness.poll() is not None or time.monotonic() > deadline:
            harness.terminate()
            print(f"error: the local cluster did not start; last lines of {log}:\n{tail(log)}",
                  file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(0.5)
    print(f"# local cluster up: {state['server']}; stop it with `make cluster-down`",
          file=sys.stderr)  # fmt: skip
    _tell(state)
    return 0


def serve(state_path: Path, nodes: int) -> NoReturn:
    """The harness process behind `up`: everything runs until SIGTERM (`down`)."""
    exit_cleanly_on_sigterm()
    with (
        LocalCluster(Binaries.locate(), nodes=nodes, images=images()) as cluster,
        Traefik(locate(), cluster.kubeconfig, cluster.network) as gateway,
        PrometheusServer(
            [cluster.pods_job()], network=cluster.network, binary=built()
        ) as prometheus,
    ):
        cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json("default"))
        state = {**cluster.state(), "gateway": gateway.url, "prometheus": prometheus.url}
        state["pids"] = {"harness": os.getpid(), **state["pids"]}  # type: ignore[dict-item]
        written = state_path.with_suffix(".tmp")
        written.write_text(json.dumps(state, indent=2))
        written.rename(state_path)  # whole, or not at all
        try:
            while True:
                time.sleep(3600)
        finally:
            state_path.unlink(missing_ok=True)


def down(state_path: Path) -> int:
    state = _load_state(state_path)
    if state is None:
        print("no local cluster recorded; nothing to stop", file=sys.stderr)
        return 0
    pids = state.get("pids")
    harness = pids.get("harness") if isinstance(pids, dict) else None
    if harness is not None:  # it stops what it started, then the sweep below finds nothing
        terminate(int(harness), HARNESS, timeout=60)
    stop_from_state(state)
    state_path.unlink(missing_ok=True)
    print(f"stopped the local cluster in {state['workdir']}", file=sys.stderr)
    return 0


def status(state_path: Path) -> int:
    state = _load_state(state_path)
    if state is None or not _running(state):
        print("no local cluster running")
        return 1
    print(f"running: {state['server']}")
    _tell(state)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {HARNESS}")
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument("--nodes", type=int, default=2, help="kwok nodes to create (default 2)")
    parser.add_argument("--state", type=Path, default=_state_file(), help="state file")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.state, args.nodes)
        if args.command == "serve":
            return serve(args.state, args.nodes)
        if args.command == "down":
            return down(args.state)
        return status(args.state)
    except ControlPlaneError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
