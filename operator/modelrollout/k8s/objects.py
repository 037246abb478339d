"""Owned objects: owner references, and server-side apply so that converging is idempotent."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelrollout.k8s.owner import ROLLOUT_LABEL, ClusterError, Manifest, Owner

__all__ = ["ROLLOUT_LABEL", "ClusterError", "Manifest", "Owner", "apply", "error_message", "scale"]

FIELD_MANAGER = "modelrollout"
_APPLY = "application/apply-patch+yaml"  # JSON is YAML


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
