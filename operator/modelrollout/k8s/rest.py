"""The operator's own Kubernetes client: JSON over HTTPS on urllib3, nothing else.

The official client builds a model class for every kind at import and for every answer; the
operator reads and writes a handful of kinds as plain JSON, and importing that client alone cost
it 16 MiB of its resident memory (docs/operator.md). The CLI and the test harness still use it.

Credentials come from the pod's ServiceAccount when in a cluster, or else from the kubeconfig
(`KUBECONFIG` or ~/.kube/config): the server, its CA, and a client certificate or a bearer token.
A ServiceAccount token file is read again every minute, as the kubelet rotates it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3

Manifest = dict[str, Any]
JSON = "application/json"
APPLY = "application/apply-patch+yaml"  # JSON is YAML
MERGE = "application/merge-patch+json"

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0
# Every worker thread may hold a connection; more than this wait for one instead of opening more.
CONNECTIONS = 16


class ApiError(Exception):
    """The API server answered with an error status (or did not answer: status None)."""

    def __init__(self, status: int | None, reason: str, body: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to prove who we are."""

    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    insecure: bool = False

    @classmethod
    def load(cls) -> Connection:
        """In a pod, its ServiceAccount; elsewhere the kubeconfig's current context."""
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get(
            "KUBERNETES_SERVICE_PORT")  # fmt: skip
        if host and port and (SERVICE_ACCOUNT / "token").exists():
            server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
            return cls(server, ca_file=str(SERVICE_ACCOUNT / "ca.crt"),
                       token_file=str(SERVICE_ACCOUNT / "token"))  # fmt: skip
        path = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
        return cls.from_kubeconfig(Path(path).expanduser())

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Connection:
        import yaml  # noqa: PLC0415  (only outside a cluster)

        config = yaml.safe_load(path.read_text()) or {}
        named = {
            part: {item["name"]: item.get(part[:-1]) or {} for item in config.get(part) or []}
            for part in ("contexts", "clusters", "users")
        }
        try:
            context = named["contexts"][config["current-context"]]
            cluster = named["clusters"][context["cluster"]]
            user = named["users"][context["user"]]
        except KeyError as error:
            raise ValueError(f"{path}: no current context, cluster or user {error}") from error
        base = path.parent

        def file(key: str, data_key: str, target: dict[str, Any]) -> str | None:
            if target.get(key):
                return str(base / target[key])  # relative paths are relative to the kubeconfig
            if target.get(data_key):
                return _private_file(base64.b64decode(target[data_key]))
            return None

        return cls(
            server=str(cluster["server"]),
            ca_file=file("certificate-authority", "certificate-authority-data", cluster),
            cert_file=file("client-certificate", "client-certificate-data", user),
            key_file=file("client-key", "client-key-data", user),
            token=user.get("token"),
            token_file=str(base / user["tokenFile"]) if user.get("tokenFile") else None,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
        )


def _private_file(data: bytes) -> str:
    """Key material embedded in a kubeconfig, as a file only this user can read (urllib3 and
    OpenSSL take paths); removed when the process ends."""
    handle, name = tempfile.mkstemp(prefix="modelrollout-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    atexit.register(_remove, name)
    return name


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


class Rest:
    """Blocking JSON requests to one API server; safe to share between threads."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0) -> None:
        self.connection = connection
        self._pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=CONNECTIONS,
            block=False,
            cert_reqs="CERT_NONE" if connection.insecure else "CERT_REQUIRED",
            ca_certs=connection.ca_file,
            cert_file=connection.cert_file,
            key_file=connection.key_file,
            timeout=urllib3.Timeout(connect=5.0, read=timeout),
            # Only a connection that could not be made is tried again: the request was not sent,
            # so no write can happen twice. Anything else is the tick's to report.
            retries=urllib3.Retry(total=2, connect=2, read=0, redirect=0, status=0, other=0),
        )
        self._lock = threading.Lock()
        self._token = connection.token
        self._token_read = 0.0

    def _authorization(self) -> dict[str, str]:
        path = self.connection.token_file
        if path is not None and time.monotonic() - self._token_read > TOKEN_REREAD_SECONDS:
            with self._lock:
                self._token = Path(path).read_text().strip()
                self._token_read = time.monotonic()
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = JSON,
                query: dict[str, str] | None = None) -> Manifest:  # fmt: skip
        """The answer's JSON; ApiError for an error status or no answer."""
        url = self.connection.server.rstrip("/") + path
        if query:
            url += "?" + urlencode(query)
        headers = {"Accept": JSON, **self._authorization()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        try:
            answer = self._pool.request(method, url, body=data, headers=headers)
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(None, f"no answer from {self.connection.server}: {error}") from error
        if answer.status >= 400:
            raise ApiError(answer.status, answer.reason or "", answer.data.decode(errors="replace"))
        parsed: Manifest = json.loads(answer.data) if answer.data else {}
        return parsed

    def stream(self, path: str, query: dict[str, str], *,
               read_timeout: float) -> Iterator[Manifest]:  # fmt: skip
        """A watch: the JSON objects of a newline-delimited answer, as they arrive. ApiError
        for an error status or a broken connection; the iterator ends when the server ends it."""
        url = self.connection.server.rstrip("/") + path + "?" + urlencode(query)
        headers = {"Accept": JSON, **self._authorization()}
        try:
            answer = self._pool.request("GET", url, headers=headers, preload_content=False,
                                        timeout=urllib3.Timeout(connect=5.0, read=read_timeout),
                                        retries=False)  # fmt: skip
        except urllib3.exceptions.HTTPError as error:
            raise ApiError(None, f"no answer from {self.connection.server}: {error}") from error
        ended = False
        try:
            if answer.status >= 400:
                raise ApiError(answer.status, answer.reason or "",
                               answer.read().decode(errors="replace"))  # fmt: skip
            yield from _lines(answer.stream(STREAM_CHUNK))
            ended = True
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiError(None, f"watch broken: {error}") from error
        finally:
            if not ended:
                answer.close()  # left mid-stream: the connection cannot serve another request
            answer.release_conn()

    def close(self) -> None:
        self._pool.clear()


STREAM_CHUNK = 64 * 1024


def _lines(chunks: Iterator[bytes]) -> Iterator[Manifest]:
    """The JSON objects of a newline-delimited stream, whatever its chunking."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for line in whole:
            if line.strip():
                yield json.loads(line)
    if pending.strip():
        yield json.loads(pending)


def path(group: str, version: str, plural: str, namespace: str | None, name: str | None = None,
         *, subresource: str | None = None) -> str:  # fmt: skip
    """The URL path of a namespaced collection, object or subresource ("" group: the core); with
    no namespace, the collection across all of them."""
    root = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace is None:
        return f"{root}/{plural}"
    parts = [root, "namespaces", quote(namespace, safe=""), plural]
    if name is not None:
        parts.append(quote(name, safe=""))
    if subresource is not None:
        parts.append(subresource)
    return "/".join(parts)


__all__ = ["APPLY", "JSON", "MERGE", "ApiError", "Connection", "Rest", "path"]
