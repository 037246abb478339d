"""Revisions: what identifies one version of a model service, and the names derived from it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelrollout.api.v1alpha1 import ModelRolloutSpec

REVISION_LABEL = "modelrollout.io/revision"
MODEL_LABEL = "modelrollout.io/model"
VERSION_LABEL = "modelrollout.io/model-version"


def revision_of(spec: ModelRolloutSpec) -> str:
    """A short, stable hash of what makes a new revision: the model and the pod template.

    Replicas, traffic, steps and analysis are how a revision is rolled out, not what it is, so
    changing them does not start a new canary.
    """
    identity: dict[str, Any] = {
        "model": spec.model.model_dump(mode="json", exclude_none=True),
        "template": spec.template.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


# The fallback (heuristic) revision's name among the revisions: never a hash (those are hex).
FALLBACK_REVISION = "fallback"


def deployment_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"


def stable_service(rollout: str) -> str:
    return f"{rollout}-stable"


def canary_service(rollout: str) -> str:
    return f"{rollout}-canary"
