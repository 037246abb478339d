"""The process node: one Node of the local cluster for which this harness is the kubelet.

kwok fakes every other node. On this one a pod's containers are local processes, started from an
image -> command table the harness owns (an image it does not know leaves the container waiting
with `ErrImagePull`, as a kubelet that cannot pull would). Each pod gets its own address from the
pod CIDR inside the data plane's network namespace (see netns.py) and runs there.

What it does, as a kubelet does: registers the Node and keeps it Ready and its Lease renewed;
resolves `env` and `envFrom` (values with `$(VAR)` references, `fieldRef`, `configMapKeyRef`,
`secretKeyRef`) and the `{SERVICE}_SERVICE_HOST`/`_PORT` variables, which lead to a relay on the
Service's cluster IP inside the namespace (a small kube-proxy); runs `readinessProbe` and
`livenessProbe` (httpGet, tcpSocket, exec); restarts per `restartPolicy` with a doubling back-off
and `restartCount`; ends pods whose containers may not restart `Succeeded` or `Failed` with the
exit code and the termination message; on deletion sends SIGTERM, waits the grace period, sends
SIGKILL and removes the pod. Each container's output goes to
`<workdir>/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, the kubelet's own layout.

Where it differs: `terminationMessagePath` cannot be a path inside a container here, so the file a
process writes is named by `$TERMINATION_MESSAGE_PATH`; volumes, init containers, resource limits
and `kubectl logs`/`exec` are not provided.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelrollout.k8s.rest import MERGE, ApiError, Connection, Rest
from modelrollout.testing.netns import Network, Relay
from modelrollout.testing.processes import ControlPlaneError, StartStop, die_with_parent, tail

Manifest = dict[str, Any]
NODE = "process-node"
NODE_LABEL = "modelrollout.io/process-node"
# Only pods that ask land here (kwok stays the default): PLACEMENT is what they add to their spec.
TAINT = {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}
PLACEMENT: dict[str, Any] = {
    "nodeSelector": {NODE_LABEL: "true"},
    "tolerations": [{"key": NODE_LABEL, "operator": "Equal", "value": "true",
                     "effect": "NoSchedule"}],
}  # fmt: skip
LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0
MESSAGE_BYTES = 4096  # a kubelet keeps at most 4 KiB of a termination message
FALLBACK_LINES = 80  # FallbackToLogsOnError: the log's last lines


@dataclass(frozen=True)
class Image:
    """What running an image means on this node: its entrypoint and default arguments."""

    entrypoint: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    # the other commands the image provides, by the name a container's `command` gives
    commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def repository(image: str) -> str:
    """`image` without its tag or digest."""
    name = image.split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def find_image(table: Mapping[str, Image], image: str) -> Image | None:
    """The exact reference first, then its repository (any tag)."""
    return table.get(image) or table.get(repository(image))


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, values: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names are replaced, `$$` is a literal `$`, and an
    unknown reference is left as written."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return values.get(match.group(1), match.group(0))

    return _REFERENCE.sub(one, text)


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError): a missing key, say."""


def _field_path(pod: Manifest, path: str, pod_ip: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    simple = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
              "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
              "spec.serviceAccountName": spec.get("serviceAccountName", ""),
              "status.podIP": pod_ip, "status.hostIP": "127.0.0.1"}  # fmt: skip
    if path in simple:
        return str(simple[path])
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
    raise ConfigError(f"fieldRef {path!r} is not supported")


@dataclass
class Container:
    """One container of a pod and what its process is doing."""

    spec: Manifest
    image: Image | None
    restarts: int = 0
    process: subprocess.Popen[bytes] | None = None
    started_at: str = ""
    state: Manifest = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Manifest = field(default_factory=dict)
    ready: bool = False
    not_before: float = 0.0  # back-off
    probes: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # ok, failed, next
    env: dict[str, str] = field(default_factory=dict)  # as resolved when this run started
    done: bool = False  # terminated and not to be restarted

    @property
    def name(self) -> str:
        return str(self.spec["name"])


class Pod:
    """One pod on the node, run by its own thread until it is removed."""

    def __init__(self, node: ProcessNode, pod: Manifest, ip: str) -> None:
        self.node, self.manifest, self.ip = node, pod, ip
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = node.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self.containers = [Container(c, find_image(node.images, c["image"]))
                           for c in pod["spec"]["containers"]]  # fmt: skip
        self.policy = pod["spec"].get("restartPolicy", "Always")
        self.started = now()
        self.deleting = threading.Event()
        self.gone = threading.Event()
        self._terminating = False
        self.written: Manifest | None = None
        self.conditions: dict[str, tuple[str, str]] = {}
        self.thread = threading.Thread(target=self._run, name=f"pod {self.name}", daemon=True)

    def log_path(self, container: Container) -> Path:
        return self.dir / container.name / f"{container.restarts}.log"

    def termination_path(self, container: Container) -> Path:
        return self.dir / container.name / "termination-log"

    # -- the pod's loop --------------------------------------------------------------------

    def _run(self) -> None:
        while not self.gone.is_set():
            if self.deleting.is_set():
                self._terminate()
                return
            try:
                for container in self.containers:
                    self._step(container)
                self._write_status()
            except Exception as error:  # the pod's loop must go on, and say so
                self.node.report(f"pod {self.namespace}/{self.name}: {error!r}; trying again")
                time.sleep(1.0)
                continue
            if all(c.done for c in self.containers):
                return  # Succeeded or Failed: nothing more happens until it is deleted
            time.sleep(0.1)

    def _step(self, c: Container) -> None:
        if c.done:
            return
        if c.image is None:
            c.state = {"waiting": {"reason": "ErrImagePull", "message": (
                f"image {c.spec['image']!r} is not in the process node's image table "
                f"(it knows {', '.join(sorted(self.node.images)) or 'none'})")}}  # fmt: skip
            return
        if c.process is None:
            if time.monotonic() >= c.not_before:
                self._start(c)
            return
        code = c.process.poll()
        if code is None:
            self._probe(c)
            return
        self._exited(c, code)

    def _start(self, c: Container) -> None:
        assert c.image is not None
        try:
            env = self.node.environment(self.manifest, c.spec, self.ip)
        except (ConfigError, ApiError) as error:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(error)}}
            c.not_before = time.monotonic() + 1.0
            return
        env["TERMINATION_MESSAGE_PATH"] = str(self.termination_path(c))
        c.env = env
        argv = self._argv(c, env)
        log = self.log_path(c)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.termination_path(c).unlink(missing_ok=True)
        workdir = c.image.workdir or log.parent
        with log.open("ab") as out:
            try:
                c.process = subprocess.Popen(
                    self.node.network.argv(argv), stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, env={**c.image.env, **env}, cwd=workdir,
                    start_new_session=True,
                    # dies with this thread's process, even one killed with SIGKILL (the pod's
                    # thread lives as long as its processes)
                    preexec_fn=die_with_parent)  # noqa: PLW1509  # fmt: skip
            except OSError as error:
                c.state = {"waiting": {"reason": "RunContainerError", "message": str(error)}}
                c.not_before = time.monotonic() + self.node.backoff(c.restarts)
                return
        self.node.spawned.append(c.process)
        c.started_at = now()
        c.state = {"running": {"startedAt": c.started_at}}
        c.ready = "readinessProbe" not in c.spec
        c.probes = {}

    def _argv(self, c: Container, env: Mapping[str, str]) -> list[str]:
        assert c.image is not None
        command, args = c.spec.get("command"), c.spec.get("args")
        if command:
            argv = [*c.image.commands.get(command[0], command[:1]), *command[1:], *(args or [])]
        else:
            argv = [*c.image.entrypoint, *(args if args is not None else c.image.args)]
        return [expand(a, env) for a in argv]

    def _exited(self, c: Container, code: int) -> None:
        message = self._termination_message(c, code)
        if code != 0:
            self.node.report(f"pod {self.namespace}/{self.name} container {c.name} exited with "
                             f"code {code}; last lines of {self.log_path(c)}:\n"
                             f"{tail(self.log_path(c))}")  # fmt: skip
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": c.started_at, "finishedAt": now()}  # fmt: skip
        if code < 0:  # killed by a signal: a shell's and a kubelet's 128 + n
            terminated["exitCode"] = 128 - code
            terminated["signal"] = -code
        if message:
            terminated["message"] = message
        c.process, c.ready = None, False
        restart = self.policy == "Always" or (self.policy == "OnFailure" and code != 0)
        if not restart:
            c.state, c.done = {"terminated": terminated}, True
            return
        c.last_state = {"terminated": terminated}
        delay = self.node.backoff(c.restarts)
        c.restarts += 1
        c.not_before = time.monotonic() + delay
        why = f"back-off {delay:g}s restarting failed container={c.name} pod={self.name}"
        c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": why}}

    def _termination_message(self, c: Container, code: int) -> str:
        with contextlib.suppress(OSError):
            written = self.termination_path(c).read_bytes()[:MESSAGE_BYTES]
            if written:
                return written.decode(errors="replace")
        if code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            return tail(self.log_path(c), FALLBACK_LINES)[-MESSAGE_BYTES:]
        return ""

    # -- probes ----------------------------------------------------------------------------

    def _probe(self, c: Container) -> None:
        for kind in ("readinessProbe", "livenessProbe"):
            probe = c.spec.get(kind)
            if probe is None:
                continue
            ok, failed, due = c.probes.get(kind, (0, 0, 0.0))
            if due == 0.0:
                due = time.monotonic() + float(probe.get("initialDelaySeconds", 0))
            if time.monotonic() < due:
                c.probes[kind] = (ok, failed, due)
                continue
            passed = self.node.check(probe, c, self)
            ok, failed = (ok + 1, 0) if passed else (0, failed + 1)
            c.probes[kind] = (ok, failed, time.monotonic() + float(probe.get("periodSeconds", 10)))
            if kind == "readinessProbe":
                if ok >= int(probe.get("successThreshold", 1)):
                    c.ready = True
                elif failed >= int(probe.get("failureThreshold", 3)):
                    c.ready = False
            elif failed >= int(probe.get("failureThreshold", 3)) and c.process is not None:
                c.process.kill()  # the liveness probe failed: restart it, as a kubelet does

    # -- status ----------------------------------------------------------------------------

    def _condition(self, kind: str, value: bool) -> Manifest:
        status = "True" if value else "False"
        known = self.conditions.get(kind)
        if known is None or known[0] != status:
            self.conditions[kind] = (status, now())
        return {"type": kind, "status": status, "lastTransitionTime": self.conditions[kind][1]}

    def phase(self) -> str:
        if all(c.done for c in self.containers):
            codes = [c.state["terminated"]["exitCode"] for c in self.containers]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.started_at for c in self.containers):
            return "Running"
        return "Pending"

    def status(self) -> Manifest:
        ready = all(c.ready for c in self.containers)
        statuses = []
        for c in self.containers:
            entry: Manifest = {"name": c.name, "image": c.spec["image"],
                               "imageID": c.spec["image"], "ready": c.ready,
                               "restartCount": c.restarts, "state": c.state,
                               "lastState": c.last_state,
                               "started": "running" in c.state}  # fmt: skip
            if c.started_at:
                entry["containerID"] = f"process://{self.uid}/{c.name}/{c.restarts}"
            statuses.append(entry)
        conditions = [self._condition("PodScheduled", True),
                      self._condition("Initialized", True),
                      self._condition("ContainersReady", ready),
                      self._condition("Ready", ready)]  # fmt: skip
        return {"phase": self.phase(), "podIP": self.ip, "podIPs": [{"ip": self.ip}],
                "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
                "startTime": self.started, "conditions": conditions,
                "containerStatuses": statuses}  # fmt: skip

    def _write_status(self) -> None:
        status = self.status()
        if status == self.written:
            return
        try:
            self.node.rest.request("PATCH", self._path("/status"), {"status": status},
                                   content_type=MERGE)  # fmt: skip
        except ApiError as error:
            if error.status == 404:
                self.gone.set()
            return  # written again on the next pass
        self.written = status

    def _path(self, suffix: str = "") -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}{suffix}"

    # -- deletion --------------------------------------------------------------------------

    def delete(self, manifest: Manifest) -> None:
        """The pod is being deleted: stop it and remove it (once, however often it is seen)."""
        self.manifest = manifest
        self.deleting.set()
        if not self.thread.is_alive() and not self._terminating:
            self._terminating = True  # finished, so its thread is gone: terminate from here
            threading.Thread(target=self._terminate, daemon=True).start()

    def grace(self) -> float:
        meta, spec = self.manifest["metadata"], self.manifest["spec"]
        seconds = meta.get("deletionGracePeriodSeconds")
        if seconds is None:
            seconds = spec.get("terminationGracePeriodSeconds", 30)
        return float(seconds)

    def _terminate(self) -> None:
        self._terminating = True
        self.kill(self.grace())
        for c in self.containers:
            if not c.done and c.started_at:
                code = c.process.returncode if c.process is not None else None
                c.state = {"terminated": {"exitCode": 137 if code is None else code,
                                          "reason": "Error", "startedAt": c.started_at,
                                          "finishedAt": now()}}  # fmt: skip
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}  # fmt: skip
        with contextlib.suppress(ApiError):  # already gone, or a new pod of the same name
            self.node.rest.request("DELETE", self._path(), body)
        self.gone.set()

    def kill(self, grace: float) -> None:
        """SIGTERM each running process (its whole session), SIGKILL after `grace` seconds."""
        running = [c.process for c in self.containers if c.process is not None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            if process.poll() is None:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


class ServiceRelays:
    """A relay on each Service's cluster IP and port inside the namespace, leading to one of its
    ready endpoints: what `{SERVICE}_SERVICE_HOST` points at."""

    def __init__(self, node: ProcessNode) -> None:
        self.node = node
        self.relays: dict[tuple[str, int], Relay] = {}
        self._lock = threading.Lock()
        self._turn = itertools.count()

    def ensure(self, service: Manifest) -> None:
        ip = service["spec"].get("clusterIP")
        if not ip or ip == "None":
            return
        meta = service["metadata"]
        for port in service["spec"].get("ports", []):
            key = (ip, int(port["port"]))
            with self._lock:
                if key in self.relays:
                    continue
                try:
                    listener = self.node.network.listen(ip, key[1])
                except OSError:
                    continue
                connect = functools.partial(self._connect, meta["namespace"], meta["name"],
                                            port.get("name"))  # fmt: skip
                self.relays[key] = Relay(listener, connect, f"{meta['name']}:{key[1]}")

    def _connect(self, namespace: str, service: str, port_name: str | None) -> socket.socket:
        slices = self.node.rest.request(
            "GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            query={"labelSelector": f"kubernetes.io/service-name={service}"})  # fmt: skip
        targets = []
        for item in slices.get("items", []):
            ports = [p for p in item.get("ports") or [] if p.get("name", "") == (port_name or "")]
            for endpoint in item.get("endpoints") or []:
                if ports and (endpoint.get("conditions") or {}).get("ready", True):
                    targets += [(a, int(ports[0]["port"])) for a in endpoint["addresses"]]
        if not targets:
            raise OSError(f"service {namespace}/{service} has no ready endpoint")
        host, port = targets[next(self._turn) % len(targets)]
        return self.node.network.connect(host, port)

    def close(self) -> None:
        with self._lock:
            for relay in self.relays.values():
                relay.close()
            self.relays = {}


def _env_name(service: str) -> str:
    return service.upper().replace("-", "_")


class ProcessNode(StartStop):
    """The Node `name`, whose pods run as processes inside `network`."""

    def __init__(self, kubeconfig: Path, network: Network, images: Mapping[str, Image], *,
                 name: str = NODE, backoff: tuple[float, float] = (1.0, 10.0),
                 api_port: int | None = None) -> None:  # fmt: skip
        self.kubeconfig, self.network, self.images, self.name = kubeconfig, network, images, name
        self._backoff = backoff
        self.rest = Rest(Connection.from_kubeconfig(kubeconfig), timeout=10)
        self.api_port = api_port or int(self.rest.connection.server.rsplit(":", 1)[1])
        self.workdir: Path | None = None  # kept after stop, for leftovers
        self.pods: dict[str, Pod] = {}
        self._ips = (f"10.88.{n // 250}.{n % 250 + 2}" for n in itertools.count())
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.services = ServiceRelays(self)
        self.spawned: list[subprocess.Popen[bytes]] = []
        self.reports: list[str] = []  # what went wrong with a pod, also in <workdir>/node.log
        self._ready_since = now()

    @property
    def pods_dir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("the process node is not started")
        return self.workdir / "pods"

    def report(self, text: str) -> None:
        """A pod's failure, with what its process said: kept, and written to node.log."""
        self.reports.append(text)
        if self.workdir is not None and self.workdir.exists():
            with (self.workdir / "node.log").open("a") as log:
                log.write(f"{now()} {text}\n")

    def backoff(self, restarts: int) -> float:
        first, cap = self._backoff
        return float(min(cap, first * 2**restarts))

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="modelrollout-node-"))
        self.pods_dir.mkdir()
        self._register()
        self._heartbeat()
        self._thread = threading.Thread(target=self._run, name="process-node", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._schedulable():
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"node {self.name} did not become schedulable in 60 s")
            time.sleep(0.2)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for pod in list(self.pods.values()):
            pod.gone.set()
            pod.kill(grace=5.0)
        self.pods = {}
        self.services.close()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.rest.close()

    def leftovers(self) -> list[str]:
        """Every process this node ever started that still runs, and its directory."""
        found = [f"pod process {p.pid} still running" for p in self.spawned if p.poll() is None]
        if self.workdir is not None and self.workdir.exists():
            found.append(f"directory {self.workdir} still exists")
        return found

    def _register(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": {
            "kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "type": "process", NODE_LABEL: "true"}},
            "spec": {"taints": [TAINT]}}  # fmt: skip
        try:
            self.rest.request("POST", "/api/v1/nodes", node)
        except ApiError as error:
            if error.status != 409:
                raise ControlPlaneError(f"registering node {self.name}: {error}") from error
        lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": self.name,
                          "leaseDurationSeconds": LEASE_SECONDS}}  # fmt: skip
        with contextlib.suppress(ApiError):
            self.rest.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease"
                              "/leases", lease)  # fmt: skip

    def _heartbeat(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.rest.request("PATCH", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                          f"leases/{self.name}", {"spec": {"renewTime": stamp}},
                          content_type=MERGE)  # fmt: skip
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "the process node runs pods as local processes",
                 "lastHeartbeatTime": now(), "lastTransitionTime": self._ready_since}  # fmt: skip
        capacity = {"cpu": "16", "memory": "32Gi", "pods": "250"}
        status = {"conditions": [ready], "capacity": capacity, "allocatable": capacity,
                  "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                {"type": "Hostname", "address": self.name}],
                  "nodeInfo": {"kubeletVersion": "process-node", "operatingSystem": "linux",
                               "architecture": "amd64"}}  # fmt: skip
        self.rest.request("PATCH", f"/api/v1/nodes/{self.name}/status", {"status": status},
                          content_type=MERGE)  # fmt: skip

    def _schedulable(self) -> bool:
        node = self.rest.request("GET", f"/api/v1/nodes/{self.name}")
        taints = node.get("spec", {}).get("taints") or []
        return not any(t.get("effect") == "NoSchedule" and t.get("key") != NODE_LABEL
                       for t in taints)  # fmt: skip

    def _run(self) -> None:
        beat = time.monotonic()
        while not self._stopped.wait(0.2):
            try:
                if time.monotonic() - beat > HEARTBEAT_SECONDS:
                    self._heartbeat()
                    beat = time.monotonic()
                self._sync()
            except (ApiError, OSError):
                continue  # the API server is going away, or a blip: the next pass

    def _sync(self) -> None:
        listed = self.rest.request(
            "GET", "/api/v1/pods", query={"fieldSelector": f"spec.nodeName={self.name}"}
        )
        seen = set()
        for manifest in listed.get("items", []):
            uid = manifest["metadata"]["uid"]
            seen.add(uid)
            pod = self.pods.get(uid)
            if pod is None:
                pod = self.pods[uid] = Pod(self, manifest, next(self._ips))
                if (manifest.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    pod.thread.start()  # (a pod that finished before this node knew it: not)
            if manifest["metadata"].get("deletionTimestamp"):
                pod.delete(manifest)
        for uid in set(self.pods) - seen:
            pod = self.pods.pop(uid)
            pod.gone.set()
            threading.Thread(target=pod.kill, args=(0.0,), daemon=True).start()

    # -- what a kubelet works out for a container -------------------------------------------

    def environment(self, pod: Manifest, container: Manifest, ip: str) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "HOSTNAME": pod["metadata"]["name"], "POD_IP": ip,
                               "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                               "KUBERNETES_SERVICE_PORT": str(self.api_port)}  # fmt: skip
        if pod["spec"].get("enableServiceLinks", True):
            env.update(self._service_links(namespace))
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            for kind, ref in (("configmaps", source.get("configMapRef")),
                              ("secrets", source.get("secretRef"))):  # fmt: skip
                if ref is not None:
                    data = self._data(namespace, kind, ref["name"], ref.get("optional", False))
                    env.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env") or []:
            value = self._value(namespace, pod, var, env, ip)
            if value is not None:
                env[var["name"]] = value
        return env

    def _value(self, namespace: str, pod: Manifest, var: Manifest, env: Mapping[str, str],
               ip: str) -> str | None:  # fmt: skip
        if "value" in var:
            return expand(str(var["value"]), env)
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            return _field_path(pod, source["fieldRef"]["fieldPath"], ip)
        for kind, key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
            ref = source.get(key)
            if ref is not None:
                data = self._data(namespace, kind, ref["name"], ref.get("optional", False))
                if ref["key"] in data:
                    return data[ref["key"]]
                if ref.get("optional", False):
                    return None
                raise ConfigError(f"couldn't find key {ref['key']} in {kind[:-1]} "
                                  f"{namespace}/{ref['name']}")  # fmt: skip
        if not source:
            return ""
        raise ConfigError(f"env {var['name']}: only value, fieldRef, configMapKeyRef and "
                          "secretKeyRef are supported")  # fmt: skip

    def _data(self, namespace: str, kind: str, name: str, optional: bool) -> dict[str, str]:
        try:
            found = self.rest.request("GET", f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except ApiError as error:
            if error.status == 404 and optional:
                return {}
            if error.status == 404:
                raise ConfigError(f'{kind[:-1]} "{name}" not found') from error
            raise ConfigError(f"reading {kind[:-1]} {namespace}/{name}: {error}") from error
        data = dict(found.get("data") or {})
        if kind == "secrets":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
        return {k: str(v) for k, v in data.items()}

    def _service_links(self, namespace: str) -> dict[str, str]:
        services = self.rest.request("GET", f"/api/v1/namespaces/{namespace}/services")
        env = {}
        for service in services.get("items", []):
            ip = service["spec"].get("clusterIP")
            ports = service["spec"].get("ports") or []
            if not ip or ip == "None" or not ports:
                continue
            if (namespace, service["metadata"]["name"]) == ("default", "kubernetes"):
                # KUBERNETES_SERVICE_* stay the API server's own address: its certificate
                # names 127.0.0.1, not the Service's cluster IP
                continue
            self.services.ensure(service)
            name = _env_name(service["metadata"]["name"])
            env[f"{name}_SERVICE_HOST"] = ip
            env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
            for port in ports:
                if port.get("name"):
                    env[f"{name}_SERVICE_PORT_{_env_name(port['name'])}"] = str(port["port"])
        return env

    def check(self, probe: Manifest, c: Container, pod: Pod) -> bool:
        """One probe: httpGet (2xx/3xx), tcpSocket (accepts) or exec (exits 0)."""
        timeout = float(probe.get("timeoutSeconds", 1))
        ports = {p.get("name"): p["containerPort"] for p in c.spec.get("ports") or []}
        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                port = int(ports.get(get["port"], get["port"]))
                sock = self.network.connect(get.get("host") or pod.ip, port, timeout)
                connection = http.client.HTTPConnection(pod.ip, port, timeout=timeout)
                connection.sock = sock
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                connection.request("GET", get.get("path", "/"), headers=headers)
                status = connection.getresponse().status
                connection.close()
                return 200 <= status < 400
            if "tcpSocket" in probe:
                port = int(ports.get(probe["tcpSocket"]["port"], probe["tcpSocket"]["port"]))
                self.network.connect(probe["tcpSocket"].get("host") or pod.ip, port,
                                     timeout).close()  # fmt: skip
                return True
            if "exec" in probe:
                # the running process's env: resolving it again would read the API each period
                done = subprocess.run(self.network.argv(list(probe["exec"]["command"])),
                                      env=c.env, capture_output=True, timeout=timeout,
                                      check=False)  # fmt: skip
                return done.returncode == 0
        except (OSError, http.client.HTTPException, subprocess.TimeoutExpired):
            return False
        return False

    # -- for tests and people --------------------------------------------------------------

    def find(self, namespace: str, name: str) -> Pod | None:
        return next((p for p in self.pods.values()
                     if (p.namespace, p.name) == (namespace, name)), None)  # fmt: skip

    def log_path(self, namespace: str, name: str, container: str) -> Path:
        """Where a pod's container writes, for its current run."""
        pod = self.find(namespace, name)
        if pod is None:
            raise ControlPlaneError(f"no pod {namespace}/{name} on {self.name}")
        c = next(c for c in pod.containers if c.name == container)
        return pod.log_path(c)

    def processes(self, namespace: str | None = None) -> list[int]:
        """Pids of the pod processes running now."""
        return [
            c.process.pid
            for p in list(self.pods.values())
            if namespace is None or p.namespace == namespace
            for c in p.containers
            if c.process is not None and c.process.poll() is None
        ]


__all__ = [
    "NODE",
    "NODE_LABEL",
    "PLACEMENT",
    "TAINT",
    "ConfigError",
    "Image",
    "ProcessNode",
    "expand",
    "find_image",
    "repository",
]
