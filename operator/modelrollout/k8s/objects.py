"""Owned objects: owner references, and server-side apply so that converging is idempotent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelrollout.api.v1alpha1 import GROUP, KIND, VERSION

Manifest = dict[str, Any]
ROLLOUT_LABEL = "modelrollout.io/rollout"
FIELD_MANAGER = "modelrollout"
_APPLY = "application/apply-patch+yaml"  # JSON is YAML


@dataclass(frozen=True)
class Owner:
    """The ModelRollout that owns (and garbage-collects) what the operator creates."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> Manifest:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, labels: dict[str, str]) -> Manifest:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**labels, ROLLOUT_LABEL: self.name},
            "ownerReferences": [self.reference()],
        }


def error_message(error: ApiException) -> str:
    """The API server's own message, which names the field or the permission at fault."""
    try:
        text = json.loads(error.body or "{}").get("message", "")
    except ValueError:
        text = ""
    return str(text or error.reason or error.status)


def apply(api: client.ApiClient, manifest: Manifest) -> None:
    """Server-side apply a Deployment or Service we own, taking over our own fields."""
    meta = manifest["metadata"]
    options: dict[str, Any] = {
        "field_manager": FIELD_MANAGER,
        "force": True,
        "_content_type": _APPLY,
    }
    if manifest["kind"] == "Deployment":
        client.AppsV1Api(api).patch_namespaced_deployment(
            meta["name"], meta["namespace"], manifest, **options
        )
    elif manifest["kind"] == "Service":
        client.CoreV1Api(api).patch_namespaced_service(
            meta["name"], meta["namespace"], manifest, **options
        )
    else:
        raise ValueError(f"apply does not handle {manifest['kind']}")


def scale(api: client.ApiClient, namespace: str, name: str, replicas: int) -> bool:
    """Set only the replica count of a Deployment, keeping its pod template as it is.

    False when the Deployment does not exist.
    """
    try:
        client.AppsV1Api(api).patch_namespaced_deployment_scale(
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _content_type="application/merge-patch+json",
        )
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
