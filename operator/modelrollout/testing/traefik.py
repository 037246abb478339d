"""Traefik, built from its Go module by hack/build-traefik.sh, as the local control plane's Gateway
API implementation: its Kubernetes Gateway provider watches the local API server (through the
admin kubeconfig), and its one entry point listens on a loopback port. `install` puts in the
GatewayClass `traefik` and a Gateway `public` whose listener is that entry point.

Traefik routes to the Pod IPs in a Service's EndpointSlices. Given the data plane's network
namespace (netns.py), it runs inside it, where the process node's pods have their addresses, and
its entry point is exposed on 127.0.0.1 outside under the same port. Without one, it runs on the
machine's loopback, accepts the GatewayClass, programs the Gateway and accepts HTTPRoutes, but the
kwok pods it would route to lead nowhere.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from modelrollout.testing.cluster import Binaries
from modelrollout.testing.netns import Network
from modelrollout.testing.processes import ManagedProcess, StartStop, built, free_ports, http_ok

CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_CLASS = "traefik"
GATEWAY = "public"


def locate() -> Path:
    """The traefik named by MODELROLLOUT_TRAEFIK, else the cached build (built if cold)."""
    return built("traefik", "MODELROLLOUT_TRAEFIK", "build-traefik.sh")


class Traefik(StartStop):
    def __init__(self, binary: Path, kubeconfig: Path, network: Network | None = None) -> None:
        self.binary = binary
        self.network = network
        self.kubeconfig = kubeconfig
        self.port, self.ping_port = free_ports(2)
        self.workdir = Path(tempfile.mkdtemp(prefix="modelrollout-traefik-"))
        self.process: ManagedProcess | None = None
        self.stopped: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Where the Gateway's listener takes requests."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [
            str(self.binary),
            f"--entryPoints.web.address=127.0.0.1:{self.port}",
            f"--entryPoints.ping.address=127.0.0.1:{self.ping_port}",
            "--ping=true",
            "--ping.entryPoint=ping",
            "--providers.kubernetesGateway=true",
            # TraefikService (its mirroring: the shadow step's mirror on this data plane)
            "--providers.kubernetesCRD=true",
            "--global.checkNewVersion=false",
            "--global.sendAnonymousUsage=false",
            "--log.level=INFO",
        ]
        env = {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": str(self.kubeconfig)}
        self._install_crds()
        if self.network is not None:
            argv = self.network.argv(argv)
            self.network.expose(self.port)
            self.network.expose(self.ping_port)
        self.process = ManagedProcess("traefik", argv, self.workdir / "traefik.log", env=env)
        self.process.start()
        self.process.wait_until(self._pinged, "answering its ping", timeout=60)

    def _install_crds(self) -> None:
        """The traefik.io CRDs its kubernetesCRD provider lists (build-traefik.sh takes them from
        its module), Established before it starts."""
        crds = self.binary.parent.parent / "crds"
        kubectl = [str(Binaries.locate().kubectl), "--kubeconfig", str(self.kubeconfig)]
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(crds)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = subprocess.run([*kubectl, "get", "crd", "-o", "json"], capture_output=True,
                                 text=True, timeout=60, check=False)  # fmt: skip
            if got.returncode == 0 and _established(json.loads(got.stdout), "traefik.io"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"the traefik.io CRDs from {crds} were not Established within 60 s")

    def _pinged(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.ping_port}/ping")

    def stop(self) -> None:
        if self.process is not None:
            self.stopped = self.process
            self.process.stop()
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What a stopped Traefik left behind: its process, its directory."""
        found = []
        if self.stopped is not None and self.stopped.exit_code() is None:
            found.append(f"traefik ({self.stopped.pid}) still running")
        if self.workdir.exists():
            found.append(f"directory {self.workdir} still exists")
        return found

    def send(self, host: str, count: int, **options: Any) -> Counter[str]:
        """`send` to this gateway, from inside its network namespace when it has one."""
        return send(self.url, host, count, network=self.network, **options)

    def exchange(self, host: str, asks: list[Ask], **options: Any) -> list[tuple[str, str]]:
        """`exchange` with this gateway, from inside its network namespace when it has one."""
        return exchange(self.url, host, asks, network=self.network, **options)

    def manifests(self, namespace: str) -> list[dict[str, Any]]:
        """The GatewayClass `traefik` and the Gateway `public` in `namespace`, listening on the
        entry point (Traefik matches a listener to the entry point with its port)."""
        return [
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
             "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER}},
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
             "metadata": {"name": GATEWAY, "namespace": namespace},
             "spec": {"gatewayClassName": GATEWAY_CLASS,
                      "listeners": [{"name": "web", "protocol": "HTTP", "port": self.port,
                                     "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
        ]  # fmt: skip

    def manifest_json(self, namespace: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": self.manifests(namespace)})


def _established(crds: dict[str, Any], group: str) -> bool:
    mine = [c for c in crds.get("items", []) if c.get("spec", {}).get("group") == group]
    return bool(mine) and all(
        any(k.get("type") == "Established" and k.get("status") == "True"
            for k in c.get("status", {}).get("conditions") or [])
        for c in mine
    )  # fmt: skip


def send(
    url: str,
    host: str,
    count: int,
    *,
    paths: tuple[str, ...] = ("/",),
    headers: dict[str, str] | None = None,
    connections: int = 4,
    network: Network | None = None,
) -> Counter[str]:
    """`count` GET requests to the gateway at `url` for `host`, over `connections` kept-alive
    connections, the paths taken in turn; how many each model version answered, whatever the
    status (an answer that was not a pod's, e.g. the gateway's 404 or 503, by status code; an
    answer cut off or a connection closed, as `broken: <error>`).
    Given the gateway's `network`, the connections are made inside it (no relay between)."""
    asks = [(paths[i % len(paths)], headers or {}) for i in range(count)]
    answers = exchange(url, host, asks, connections=connections, network=network)
    return Counter(version for version, _ in answers)


Ask = tuple[str, dict[str, str]]  # a path and the request's headers


def exchange(url: str, host: str, asks: list[Ask], *, connections: int = 4,
             network: Network | None = None) -> list[tuple[str, str]]:  # fmt: skip
    """One GET per ask, in order, over `connections` kept-alive connections: for each, the model
    version that answered (or `HTTP <status>` for an answer that was not a pod's, `broken:
    <error>` for one cut off) and the arm the pod was stamped with ("" for none)."""
    address = url.removeprefix("http://")
    ip, port = address.rsplit(":", 1)
    answers: list[tuple[str, str]] = [("", "")] * len(asks)

    def connect() -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(address, timeout=10)
        if network is not None:
            connection.sock = network.connect(ip, int(port), timeout=10)
        return connection

    def worker(first: int) -> None:
        connection = connect()
        for i in range(first, len(asks), connections):
            path, headers = asks[i]
            try:
                connection.request("GET", path, headers={"Host": host, **headers})
                answer = connection.getresponse()
                body = answer.read()
                if answer.getheader("X-Served-By"):  # a pod's answer, even an error
                    said = json.loads(body)
                    answers[i] = (str(said["version"]), str(said.get("arm", "")))
                else:
                    answers[i] = (f"HTTP {answer.status}", "")
            except (OSError, http.client.HTTPException, ValueError) as error:
                # a pod that died mid-answer, or the gateway closing the connection: counted as
                # what a user saw, on a new connection
                answers[i] = (f"broken: {type(error).__name__}", "")
                connection.close()
                connection = connect()
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


__all__ = ["CONTROLLER", "GATEWAY", "GATEWAY_CLASS", "Traefik", "exchange", "locate", "send"]
