"""What runs: the model, the pod template, the selector and the Services' ports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from modelrollout.api.v1alpha1.rules import LABEL_VALUE_PATTERN, Model

# The operator names Services NAME-stable and NAME-canary, which must be DNS labels (63).
MAX_NAME_LENGTH = 63 - len("-canary")
NAME_MESSAGE = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the operator names the "
    "Services NAME-stable and NAME-canary, and a Service name is at most 63"
)


class ModelRef(Model):
    name: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    version: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    uri: str | None = Field(default=None, max_length=2048)


# Label values are at most 63 characters in Kubernetes; bounding them (and the maps) keeps the
# selector-matches-template CEL rule within the API server's cost budget.
LabelValue = Annotated[str, Field(max_length=63)]


class LabelSelectorRequirement(Model):
    key: str = Field(max_length=317)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = Field(default=None, max_length=64)


class LabelSelector(Model):
    match_labels: dict[str, LabelValue] | None = Field(
        default=None, json_schema_extra={"maxProperties": 16}
    )
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, max_length=16)


class PodTemplateMetadata(Model):
    labels: dict[str, LabelValue] | None = Field(
        default=None, json_schema_extra={"maxProperties": 64}
    )
    annotations: dict[str, str] | None = Field(
        default=None, json_schema_extra={"maxProperties": 128}
    )


class PodTemplate(Model):
    """A pod template exactly as in a Deployment; its spec is validated by the Deployment."""

    metadata: PodTemplateMetadata | None = None
    spec: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class Challenger(Model):
    """A candidate judged beside spec.model in A/B/n: its model version, and optionally its own
    model URI and pod template (else spec.model's URI and spec.template)."""

    version: str = Field(pattern=LABEL_VALUE_PATTERN, max_length=63)
    uri: str | None = Field(default=None, max_length=2048)
    template: PodTemplate | None = None


class ServicePorts(Model):
    port: int = Field(default=80, ge=1, le=65535)
    target_port: int | str = Field(
        default="http",
        json_schema_extra={"x-kubernetes-int-or-string": True},
    )
