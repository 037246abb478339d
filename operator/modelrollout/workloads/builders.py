"""Pure builders of the objects a ModelRollout owns: one Deployment per live revision, the
stable and canary Services, and a retraining's Job. Adapters apply them with server-side apply
(a Job is created by its name), so building the same object twice is a no-op on the cluster."""

from __future__ import annotations

import copy

from modelrollout.api.v1alpha1 import ModelRolloutSpec, PodTemplate, Retraining
from modelrollout.domain.monitor import retrain_action
from modelrollout.domain.revision import (
    FALLBACK_REVISION,
    MODEL_LABEL,
    REVISION_LABEL,
    VERSION_LABEL,
    canary_service,
    deployment_name,
    stable_service,
)
from modelrollout.k8s.owner import Manifest, Owner


def _model_env(spec: ModelRolloutSpec, version: str) -> list[Manifest]:
    env = [
        {"name": "MODEL_NAME", "value": spec.model.name},
        {"name": "MODEL_VERSION", "value": version},
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
    return _deployment(owner, spec, revision, replicas, template_model=spec.template,
                       version=spec.model.version)  # fmt: skip


def build_fallback(owner: Owner, spec: ModelRolloutSpec) -> Manifest:
    """NAME-fallback: spec.fallback's template, kept at its replicas, with its own version."""
    if spec.fallback is None:
        raise ValueError("no spec.fallback")
    f = spec.fallback
    return _deployment(owner, spec, FALLBACK_REVISION, f.replicas, template_model=f.template,
                       version=f.version)  # fmt: skip


def _deployment(owner: Owner, spec: ModelRolloutSpec, revision: str, replicas: int, *,
                template_model: PodTemplate, version: str) -> Manifest:  # fmt: skip
    template = template_model.model_dump(mode="json", by_alias=True, exclude_none=True)
    identity = {
        REVISION_LABEL: revision,
        MODEL_LABEL: spec.model.name,
        VERSION_LABEL: version,
    }
    metadata = template.get("metadata", {})
    labels = {**metadata.get("labels", {}), **identity}
    pod_spec = copy.deepcopy(template["spec"])
    env = _model_env(spec, version)
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


def build_service(owner: Owner, spec: ModelRolloutSpec, role: str, revision: str, *,
                  name: str | None = None) -> Manifest:  # fmt: skip
    """`NAME-stable` or `NAME-canary` (or `name`: an A/B/n arm's), selecting the pods of one
    revision."""
    if name is None:
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


RETRAINING_LABEL = "modelrollout.io/retraining"


def build_job(owner: Owner, spec: ModelRolloutSpec, retraining: Retraining) -> Manifest:
    """A retraining's Job: the user's template (spec.monitor.onAlarm[].retrain.job), named
    NAME-retrain-N, owned by the rollout, with env in every container that says what triggered
    it (MODELROLLOUT_TRIGGER_*) and which model it retrains (MODEL_NAME, MODEL_VERSION)."""
    action = retrain_action(spec, retraining)
    if action is None or action.job is None:
        raise ValueError(f"no retraining Job for signal {retraining.trigger.signal}")
    template = action.job.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    t = retraining.trigger
    values = {
        "MODELROLLOUT_ROLLOUT": owner.name,
        "MODELROLLOUT_NAMESPACE": owner.namespace,
        "MODELROLLOUT_RETRAINING": str(retraining.id),
        "MODELROLLOUT_TRIGGER_SIGNAL": t.signal,
        "MODELROLLOUT_TRIGGER_VALUE": "" if t.value is None else repr(t.value),
        "MODELROLLOUT_TRIGGER_BOUND": "" if t.bound is None else repr(t.bound),
        "MODELROLLOUT_TRIGGER_MESSAGE": t.message,
        "MODELROLLOUT_TRIGGER_WINDOW": t.window,
        "MODELROLLOUT_TRIGGER_REFERENCE": t.reference,
        "MODEL_NAME": t.model,
        "MODEL_VERSION": t.version,
    }
    env = [{"name": k, "value": v} for k, v in values.items()]
    job_spec = copy.deepcopy(template["spec"])
    pod = job_spec["template"]
    pod_spec = pod["spec"]
    pod_spec.setdefault("restartPolicy", "Never")
    pod_spec["containers"] = [_with_env(c, env) for c in pod_spec.get("containers", [])]
    labels = {RETRAINING_LABEL: str(retraining.id)}
    pod_meta = pod.get("metadata", {})
    pod["metadata"] = {**pod_meta, "labels": {**pod_meta.get("labels", {}), **labels}}
    metadata = owner.metadata(retraining.job, {**template.get("metadata", {}).get("labels", {}),
                                               **labels})  # fmt: skip
    annotations = template.get("metadata", {}).get("annotations")
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}
