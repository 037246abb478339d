"""The shadow step's comparator (modelrollout.shadow.comparator), as the rollout owns it while the
step runs: a Deployment NAME-shadow of one pod, from the operator's own image, placed as the
model's pods are (their nodeSelector, tolerations, affinity), and its Service, the mirror's
target. It reaches the candidate and the champion through their Services, by the
addresses a kubelet puts in every container's environment ({SERVICE}_SERVICE_HOST and _PORT)."""

from __future__ import annotations

from modelrollout.api.v1alpha1 import ModelRolloutSpec, Shadow
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.revision import (
    COMPARATOR_REVISION,
    REVISION_LABEL,
    VERSION_LABEL,
    canary_service,
    comparator_service,
    deployment_name,
    stable_service,
)
from modelrollout.k8s.owner import ROLLOUT_LABEL, Manifest, Owner

PORT = 8080
COMMAND = "modelrollout-comparator"  # the image's console script (pyproject.toml)


def _service_url(service: str) -> str:
    variable = service.upper().replace("-", "_")
    return f"http://$({variable}_SERVICE_HOST):$({variable}_SERVICE_PORT)"


# Where the model's pods may run, the comparator may too (a node pool of its own, taints).
PLACEMENT_FIELDS = ("nodeSelector", "tolerations", "affinity", "priorityClassName",
                    "imagePullSecrets")  # fmt: skip


def _placement(spec: ModelRolloutSpec) -> Manifest:
    template = spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]
    return {k: template[k] for k in PLACEMENT_FIELDS if k in template}


def build_comparator(owner: Owner, spec: ModelRolloutSpec, shadow: Shadow, version: str,
                     image: str) -> list[Manifest]:  # fmt: skip
    """The comparator's Deployment and Service for the candidate of model version `version`."""
    labels = {REVISION_LABEL: COMPARATOR_REVISION, ROLLOUT_LABEL: owner.name}
    env = {
        "CANDIDATE_URL": _service_url(canary_service(owner.name)),
        "CHAMPION_URL": _service_url(stable_service(owner.name)),
        "ROLLOUT": f"{owner.namespace}/{owner.name}",
        "VERSION": version,
        "FIELD": shadow.field,
        "REQUEST_ID": shadow.request_id,
        "LABEL_DELAY": f"{parse_duration(shadow.label_delay):g}",
        "PORT": str(PORT),
    }
    probe = {"httpGet": {"path": "/ready", "port": PORT}, "periodSeconds": 2}
    container = {
        "name": "comparator",
        "image": image,
        "command": [COMMAND],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                *({"name": k, "value": v} for k, v in env.items())],
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
    }  # fmt: skip
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": owner.metadata(
            deployment_name(owner.name, COMPARATOR_REVISION), {**labels, VERSION_LABEL: version}
        ),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {**_placement(spec), "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": owner.metadata(
            comparator_service(owner.name), {"modelrollout.io/role": "shadow"}
        ),
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "http", "port": spec.service.port, "targetPort": PORT, "protocol": "TCP"}
            ],
        },
    }
    return [deployment, service]
