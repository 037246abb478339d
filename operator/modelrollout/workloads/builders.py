"""Pure builders of the objects a ModelRollout owns: one Deployment per live revision and the
stable and canary Services. Adapters apply them with server-side apply, so building the same
object twice is a no-op on the cluster."""

from __future__ import annotations

import copy

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.domain.revision import (
    MODEL_LABEL,
    REVISION_LABEL,
    VERSION_LABEL,
    canary_service,
    deployment_name,
    stable_service,
)
from modelrollout.k8s.owner import Manifest, Owner


def _model_env(spec: ModelRolloutSpec) -> list[Manifest]:
    env = [
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "MODEL_VERSION", "value": spec.model.version},
    ]
    if spec.model.uri:
        env.append({"name": "MODEL_URI", "value": spec.model.uri})
    return env


def _with_env(container: Manifest, env: list[Manifest]) -> Manifest:
    injected = {e["name"] for e in env}
    kept = [e for e in container.get("env", []) if e.get("name") not in injected]
    return {**container, "env": [*kept, *env]}


def build_deployment(
    owner: Owner, spec: ModelRolloutSpec, revision: str, replicas: int
) -> Manifest:
    """The Deployment of one revision: the user's template, with the model's identity injected
    (env MODEL_NAME, MODEL_VERSION, MODEL_URI and labels) and selected by its revision label."""
    template = spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    identity = {
        REVISION_LABEL: revision,
        MODEL_LABEL: spec.model.name,
        VERSION_LABEL: spec.model.version,
    }
    metadata = template.get("metadata", {})
    labels = {**metadata.get("labels", {}), **identity}
    pod_spec = copy.deepcopy(template["spec"])
    env = _model_env(spec)
    for key in ("containers", "initContainers"):
        if key in pod_spec:
            pod_spec[key] = [_with_env(c, env) for c in pod_spec[key]]
    selector = {**(spec.selector.match_labels or {}), REVISION_LABEL: revision}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(deployment_name(owner.name, revision), identity),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {**metadata, "labels": labels}, "spec": pod_spec},
        },
    }


def build_service(owner: Owner, spec: ModelRolloutSpec, role: str, revision: str) -> Manifest:
    """`NAME-stable` or `NAME-canary`, selecting the pods of one revision."""
    name = stable_service(owner.name) if role == "stable" else canary_service(owner.name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(name, {"modelrollout.io/role": role}),
        "spec": {
            "selector": {**(spec.selector.match_labels or {}), REVISION_LABEL: revision},
            "ports": [
                {
                    "name": "http",
                    "port": spec.service.port,
                    "targetPort": spec.service.target_port,
                    "protocol": "TCP",
                }
            ],
        },
    }
