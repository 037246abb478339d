"""The building blocks of the API's models: the patterns, the base model, and cross-field
rules declared once (CEL for the CRD, the same check for the model, one message)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic.alias_generators import to_camel, to_snake

# Go-style durations as Kubernetes users write them: 30s, 5m, 1h30m, 1.5h, 500ms.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
# A label value, since model name and version are injected as pod labels.
LABEL_VALUE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


def cel(*rules: tuple[str, str] | tuple[str, str, str]) -> dict[str, Any]:
    """CEL validation rules for the CRD: (rule, message) or (rule, message, fieldPath)."""
    validations = []
    for rule in rules:
        entry = {"rule": rule[0], "message": rule[1]}
        if len(rule) == 3:
            entry["fieldPath"] = rule[2]
        validations.append(entry)
    return {"x-kubernetes-validations": validations}


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, declared once: the CEL the API server checks at admission, the same
    rule over the model (`holds`), and the one message both give."""

    cel: str
    holds: Callable[[Any], bool]
    message: str
    field_path: str | None = None

    def entry(self) -> tuple[str, str] | tuple[str, str, str]:
        if self.field_path is None:
            return (self.cel, self.message)
        return (self.cel, self.message, self.field_path)


def _given(model: Any, field: str) -> bool:
    return getattr(model, to_snake(field)) is not None


def exactly_one(what: str, *fields: str) -> Rule:
    """Exactly one of `fields` (as the API names them) is given."""
    names = ", ".join(fields[:-1]) + f" or {fields[-1]}" if len(fields) > 1 else fields[0]
    return Rule(
        "[" + ", ".join(f"has(self.{f})" for f in fields) + "].exists_one(x, x)",
        lambda m: sum(_given(m, f) for f in fields) == 1,
        f"{what} needs exactly one of {names}",
    )


def together(first: str, second: str) -> Rule:
    """`first` and `second` are given together or not at all."""
    return Rule(f"has(self.{first}) == has(self.{second})",
                lambda m: _given(m, first) == _given(m, second),
                f"{first} and {second} go together")  # fmt: skip


def only_with(field: str, key: str, value: str) -> Rule:
    """`field` is given exactly when `key` is `value`."""
    return Rule(f"(self.{key} == '{value}') == has(self.{field})",
                lambda m: (getattr(m, key) == value) == _given(m, field),
                f"{field} is required with {key}: {value}, and only then", f".{field}")  # fmt: skip


def ruled(*rules: Rule) -> dict[str, Any]:
    return cel(*(r.entry() for r in rules))


class Ruled(Model):
    """A model with cross-field rules (RULES): the CRD gets them as CEL (declare
    `model_config = ConfigDict(json_schema_extra=ruled(*RULES))`), the model checks them."""

    RULES: ClassVar[tuple[Rule, ...]] = ()

    @classmethod
    def rules(cls) -> tuple[Rule, ...]:
        """The rules: RULES, unless a model makes its own from its fields (Signal)."""
        return cls.RULES

    @model_validator(mode="after")
    def _check_rules(self) -> Any:
        for rule in type(self).rules():
            if not rule.holds(self):
                raise ValueError(rule.message)
        return self
