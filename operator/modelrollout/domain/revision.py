"""Revisions: what identifies one version of a model service, and the names derived from it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modelrollout.api.v1alpha1 import Challenger, ModelRolloutSpec, RevisionRef

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
# The shadow step's comparator: its Deployment NAME-shadow (as if a revision) and its Service.
COMPARATOR_REVISION = "shadow"


def deployment_name(rollout: str, revision: str) -> str:
    return f"{rollout}-{revision}"


def stable_service(rollout: str) -> str:
    return f"{rollout}-stable"


def canary_service(rollout: str) -> str:
    return f"{rollout}-canary"


def comparator_service(rollout: str) -> str:
    return f"{rollout}-{COMPARATOR_REVISION}"


def arm_service(rollout: str, index: int) -> str:
    """An A/B/n candidate's Service, by its place (1..5) among the candidates: NAME-armN fits
    the 63 characters of a Service name for any rollout name admission allows (56)."""
    return f"{rollout}-arm{index}"


def candidate_spec(spec: ModelRolloutSpec, challenger: Challenger) -> ModelRolloutSpec:
    """The spec a challenger's revision is made from: spec.model with its version (and URI, if
    it states one), and its own pod template if it states one."""
    model = spec.model.model_copy(update={"version": challenger.version,
                                          "uri": challenger.uri or spec.model.uri})  # fmt: skip
    return spec.model_copy(update={"model": model,
                                   "template": challenger.template or spec.template})  # fmt: skip


def candidate_specs(spec: ModelRolloutSpec) -> list[ModelRolloutSpec]:
    """A/B/n: spec itself, then every challenger's spec; empty for a one-candidate spec."""
    if not spec.challengers:
        return []
    return [spec, *(candidate_spec(spec, c) for c in spec.challengers)]


def candidates(spec: ModelRolloutSpec) -> tuple[RevisionRef, ...]:
    """A/B/n: spec.model's revision, then every challenger's; empty for a one-candidate spec."""
    return tuple(RevisionRef(revision=revision_of(s), version=s.model.version)
                 for s in candidate_specs(spec))  # fmt: skip
