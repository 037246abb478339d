"""The cluster as the ticker sees it (controller/ports.py `Cluster`), on the operator's own
JSON client (rest.py).

Reads come from the Store, which the operator's watches keep current; a write's answer goes
into the Store at once. Converging writes only what differs from what was last seen, and says
when it puts back something another writer changed or deleted. Without watches (`watching`
False: tests that tick by hand), the rollout and its Deployments are read from the API server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from typing import Any, cast
from urllib.parse import quote

from modelrollout.api.v1alpha1 import GROUP, PLURAL, VERSION
from modelrollout.domain.machine import Incident
from modelrollout.domain.revision import REVISION_LABEL, deployment_name
from modelrollout.k8s.objects import FIELD_MANAGER, error_message, why_unready
from modelrollout.k8s.owner import (
    APPLIED_ANNOTATION,
    CANNOT_SERVE,
    ROLLOUT_LABEL,
    ClusterError,
    Desired,
    Manifest,
    Owner,
)
from modelrollout.k8s.rest import APPLY, MERGE, ApiError, Rest, path
from modelrollout.k8s.store import Kind, Store, Workload

log = logging.getLogger(__name__)
_APPLY_QUERY = {"fieldManager": FIELD_MANAGER, "force": "true"}
_CORE = ("", "v1")
_APPS = ("apps", "v1")
_BATCH = ("batch", "v1")


def failure(error: ApiError, doing: str) -> ClusterError:
    return ClusterError(f"{doing}: {error_message(error)}", error.status,
                        terminating=terminating(error), unanswered=_unanswered(error))  # fmt: skip


def _unanswered(error: ApiError) -> bool:
    return error.status is None or error.status in CANNOT_SERVE


def terminating(error: ApiError) -> bool:
    """The namespace is being deleted: the API server's NamespaceLifecycle refusal, told by its
    cause (a StatusCause's type is the JSON key `reason`)."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except ValueError:
        return False
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


def digest(manifest: Manifest) -> str:
    """A short, stable digest of an object as the operator wants it."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class KubeCluster:
    def __init__(self, api: Rest, store: Store | None = None) -> None:
        self.api = api
        self.watching = store is not None
        self.store = store if store is not None else Store()
        # What this process last wrote to each object a rollout owns (by rollout, then (kind,
        # name) -> digest or weight): a later difference was made by someone else, and is said
        # when put back. Forgotten with the rollout.
        self._written: dict[tuple[str, str], dict[tuple[str, str], str]] = {}

    def _send(self, doing: str, method: str, where: str, body: Any = None,
              **options: Any) -> Manifest:  # fmt: skip
        """The API server's answer; an error is a ClusterError that says what was being done."""
        try:
            return self.api.request(method, where, body, **options)
        except ApiError as error:
            raise failure(error, doing) from error

    def _unless(self, absent: tuple[int, ...], doing: str, method: str, where: str,
                body: Any = None, **options: Any) -> Manifest | None:  # fmt: skip
        """`_send`, or None for an error status in `absent` (what the caller takes as "not
        there": gone, or changed meanwhile)."""
        try:
            return self._send(doing, method, where, body, **options)
        except ClusterError as error:
            if error.status in absent:
                return None
            raise

    # -- reading ---------------------------------------------------------------------------------

    def fetch(self, group: str, version: str, plural: str, namespace: str | None,
              name: str) -> Manifest | None:  # fmt: skip
        """Any object as the API server has it now (no store: what is read only while a shadow
        step runs, a Gateway, a GatewayClass, a TraefikService); None when it does not exist.
        `namespace` None: a cluster-scoped object."""
        where = (path(group, version, plural, namespace, name) if namespace is not None
                 else f"{path(group, version, plural, None)}/{quote(name, safe='')}")  # fmt: skip
        return self._unless((404,), f"reading {plural} {namespace or ''}/{name}", "GET", where)

    def read(self, namespace: str, name: str, *, fresh: bool = False) -> Manifest | None:
        """The ModelRollout, or None once it is gone. `fresh` reads the API server."""
        kind = (GROUP, VERSION, PLURAL)
        return self._object(self.store.rollouts, kind, namespace, name, fresh=fresh)

    def _object(self, stored: Kind, kind: tuple[str, str, str], namespace: str, name: str, *,
                fresh: bool) -> Manifest | None:  # fmt: skip
        """A custom object as last seen, or (`fresh`, or not watching) as the API server has it
        now, which the store then remembers; None once it is gone."""
        if self.watching and not fresh:
            seen = stored.get((namespace, name))
            if seen is not None:
                return cast(Manifest, seen)
        group, version, plural = kind
        body = self._unless((404,), f"reading {plural} {namespace}/{name}", "GET",
                            path(group, version, plural, namespace, name))  # fmt: skip
        if body is None:
            stored.forget((namespace, name))
            return None
        stored.put(body)
        return body

    def available(self, owner: Owner, deployment: str) -> bool:
        seen = self._workloads(owner).get(deployment)
        return seen is not None and seen.available

    def _workloads(self, owner: Owner) -> dict[str, Workload]:
        """The rollout's Deployments by name, as last seen (listed afresh when not watching)."""
        if not self.watching:
            listed = self._send(
                f"listing Deployments in {owner.namespace}", "GET",
                path(*_APPS, "deployments", owner.namespace),
                query={"labelSelector": f"{ROLLOUT_LABEL}={owner.name}"},
            )  # fmt: skip
            for name in self.store.deployments.owned_by(owner.namespace, owner.name):
                self.store.deployments.forget((owner.namespace, name))
            for item in listed.get("items") or []:
                self.store.deployments.put(item)
        return self.store.deployments.owned_by(owner.namespace, owner.name)

    def incidents(self, owner: Owner, revision: str) -> list[Incident]:
        """Interruptions of the revision's pods (k8s/pods.py): from the pod watch, or, when not
        watching, from listing its pods now (then only restarts, not readiness flaps)."""
        if not self.watching:
            for item in self._revision_pods(owner, revision):
                self.store.pods.put(item)
        return self.store.pods.incidents(owner.namespace, deployment_name(owner.name, revision))

    def why_unready(self, owner: Owner, revision: str) -> str | None:
        return why_unready(self._revision_pods(owner, revision))

    def _revision_pods(self, owner: Owner, revision: str) -> list[Manifest]:
        listed = self._send(
            f"listing the pods of revision {revision} in {owner.namespace}", "GET",
            path(*_CORE, "pods", owner.namespace),
            query={"labelSelector": f"{REVISION_LABEL}={revision}"},
        )  # fmt: skip
        return list(listed.get("items") or [])

    def config_value(self, namespace: str, name: str, key: str) -> str:
        where = f"reference ConfigMap {namespace}/{name}"
        config = self._send(where, "GET", path(*_CORE, "configmaps", namespace, name))
        data = config.get("data") or {}
        if key not in data:
            raise ClusterError(f"{where} has no key {key}")
        return str(data[key])

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        where = f"Secret {namespace}/{name}"
        try:
            secret = self.api.request("GET", path(*_CORE, "secrets", namespace, name))
        except ApiError as error:
            said = "not found" if error.status == 404 else error_message(error)
            raise ClusterError(f"{where}: {said}", error.status,
                               unanswered=_unanswered(error)) from error  # fmt: skip
        try:
            return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise ClusterError(f"{where}: {error}") from error

    def job_outcome(self, namespace: str, name: str) -> tuple[str, str] | None:
        job = self._unless((404,), f"reading Job {namespace}/{name}", "GET",
                           path(*_BATCH, "jobs", namespace, name))  # fmt: skip
        if job is None:
            return None
        conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []
                      if c.get("status") == "True"}  # fmt: skip
        state = "Succeeded" if "Complete" in conditions else \
            "Failed" if "Failed" in conditions else "Running"  # fmt: skip
        if state == "Running":
            return state, ""
        said = self._termination_message(namespace, name)
        condition = conditions.get("Complete") or conditions.get("Failed") or {}
        return state, said or str(condition.get("message") or condition.get("reason") or "")

    def _termination_message(self, namespace: str, job: str) -> str:
        """The termination message of the Job's latest pod that has one."""
        listed = self._send(f"listing the pods of Job {namespace}/{job}", "GET",
                            path(*_CORE, "pods", namespace),
                            query={"labelSelector": f"job-name={job}"})  # fmt: skip

        def created(pod: Manifest) -> str:
            return str((pod.get("metadata") or {}).get("creationTimestamp") or "")

        pods = sorted(listed.get("items") or [], key=created)
        for pod in reversed(pods):
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                ended = (container.get("state") or {}).get("terminated") or {}
                if ended.get("message"):
                    return str(ended["message"]).strip()
        return ""

    # -- writing ---------------------------------------------------------------------------------

    def create_job(self, owner: Owner, job: Manifest) -> None:
        name = job["metadata"]["name"]
        self._unless((409,), f"creating Job {owner.namespace}/{name}", "POST",
                     path(*_BATCH, "jobs", owner.namespace), job)  # fmt: skip

    def write_status(self, owner: Owner, resource_version: str,
                     status: dict[str, Any]) -> str | None:  # fmt: skip
        """Merge-patch the status on the resourceVersion read: the new resourceVersion, or None
        when the object changed since it was read (409) or is gone (404)."""
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        where = path(GROUP, VERSION, PLURAL, owner.namespace, owner.name, subresource="status")
        stored = self._unless((404, 409), "writing status", "PATCH", where, patch,
                              content_type=MERGE)  # fmt: skip
        if stored is None:
            log.debug("status not written: the object changed or went away")
            return None
        self.store.rollouts.put(stored)
        return str(stored["metadata"]["resourceVersion"])

    def converge(self, owner: Owner, desired: Desired) -> list[str]:
        """Make the owned Deployments and Services what `desired` says, writing only what
        differs; what was put back after another writer changed it, in words."""
        corrections: list[str] = []
        seen = self._workloads(owner)
        for manifest in desired.apply:
            said = self._apply(owner, manifest, seen)
            if said:
                corrections.append(said)
        for name, replicas in desired.scale.items():
            self._scale(owner, name, replicas, seen.get(name))
        for name, workload in seen.items():
            if workload.revision is not None and workload.revision not in desired.keep:
                self._delete(owner, name)
        services = self.store.services.owned_by(owner.namespace, owner.name)
        for name in sorted(desired.retire & set(services)):
            self._unless((404,), f"deleting Service {owner.namespace}/{name}", "DELETE",
                         path(*_CORE, "services", owner.namespace, name))  # fmt: skip
            self.store.services.forget((owner.namespace, name))
        return corrections

    def _apply(self, owner: Owner, manifest: Manifest,
               deployments: dict[str, Workload]) -> str | None:  # fmt: skip
        kind, meta = manifest["kind"], manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        wanted = digest(manifest)
        replicas = (manifest.get("spec") or {}).get("replicas")
        stored = self.store.deployments if kind == "Deployment" else self.store.services
        seen = deployments.get(name) if kind == "Deployment" else stored.get((namespace, name))
        if seen is not None and seen.digest == wanted and seen.replicas == replicas:
            return None
        said = None
        if self._written.get((owner.namespace, owner.name), {}).get((kind, name)) == wanted:
            # we wrote exactly this, and what is there now is not it: someone else's doing
            what = "was deleted" if seen is None else _difference(seen, replicas)
            said = f"{kind} {name} {what} by another writer; the operator put it back"
        body = {**manifest, "metadata": {**meta, "annotations": {
            **(meta.get("annotations") or {}), APPLIED_ANNOTATION: wanted}}}  # fmt: skip
        if kind == "Deployment":
            where = path(*_APPS, "deployments", namespace, name)
        elif kind == "Service":
            where = path(*_CORE, "services", namespace, name)
        else:
            raise ValueError(f"converge does not apply {kind}")
        answer = self._send(f"applying {kind} {namespace}/{name}", "PATCH", where, body,
                            content_type=APPLY, query=_APPLY_QUERY)  # fmt: skip
        stored.put(answer)
        self.wrote(owner, kind, name, wanted)
        return said

    def _scale(self, owner: Owner, name: str, replicas: int, seen: Workload | None) -> None:
        if seen is None:
            # Its template was the spec's when it was current; the spec no longer says it.
            log.warning("%s/%s has no Deployment %s left to scale", owner.namespace, owner.name,
                        name)  # fmt: skip
            return
        if seen.replicas == replicas:
            return
        answer = self._unless(
            (404,), f"scaling Deployment {owner.namespace}/{name}", "PATCH",
            path(*_APPS, "deployments", owner.namespace, name), {"spec": {"replicas": replicas}},
            content_type=MERGE,
        )  # fmt: skip
        if answer is None:
            self.store.deployments.forget((owner.namespace, name))
            return
        self.store.deployments.put(answer)

    def _delete(self, owner: Owner, name: str) -> None:
        self._unless((404,), f"deleting Deployment {owner.namespace}/{name}", "DELETE",
                     path(*_APPS, "deployments", owner.namespace, name))  # fmt: skip
        self.store.deployments.forget((owner.namespace, name))

    def wrote(self, owner: Owner, kind: str, name: str, value: str) -> str | None:
        """Remember what this process wrote to an object `owner` owns; what it remembered."""
        memory = self._written.setdefault((owner.namespace, owner.name), {})
        before = memory.get((kind, name))
        memory[(kind, name)] = value
        return before

    def forget(self, namespace: str, name: str) -> None:
        """The rollout is gone: nothing it owned needs remembering."""
        self._written.pop((namespace, name), None)

    # -- custom objects (routes), for the routers ------------------------------------------------

    def custom(self, group: str, version: str, plural: str, namespace: str, name: str, *,
               fresh: bool = False) -> Manifest | None:  # fmt: skip
        """A route as last seen (`fresh`, or not watching: from the API server)."""
        return self._object(self.store.routes, (group, version, plural), namespace, name,
                            fresh=fresh)  # fmt: skip

    def write_custom(self, group: str, version: str, plural: str, body: Manifest, *,
                     create: bool) -> Manifest:  # fmt: skip
        """Create the object, or replace it on the resourceVersion it carries. A conflict
        (409: changed or created meanwhile) raises ClusterError with status 409."""
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        doing = f"writing {plural} {namespace}/{name}"
        if create:
            stored = self._send(doing, "POST", path(group, version, plural, namespace), body)
        else:
            stored = self._send(doing, "PUT", path(group, version, plural, namespace, name), body)
        self.store.routes.put(stored)
        return stored


def _difference(seen: Workload, replicas: int | None) -> str:
    if replicas is not None and seen.replicas != replicas:
        return f"was scaled to {seen.replicas} replicas (the rollout wants {replicas})"
    return "was changed"
