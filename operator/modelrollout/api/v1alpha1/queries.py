"""PromQL in the spec: templates with known variables, and series selectors."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from modelrollout.api.v1alpha1.rules import cel

TEMPLATE_VARIABLES = (
    "model",
    "namespace",
    "name",
    "version",
    "canary.version",
    "stable.version",
    "canary.revision",
    "stable.revision",
    "interval",
)
# A query is a run of: any character but `{`; a `{` not followed by `{`; or `{{ known-variable }}`.
# One linear regex, so the API server's CEL cost estimate stays within budget; the models use the
# very same pattern.
TEMPLATE_PATTERN = (
    r"^([^{]|\{[^{]|\{\{\s*("
    + "|".join(v.replace(".", r"\.") for v in TEMPLATE_VARIABLES)
    + r")\s*\}\})*\{?$"
)
TEMPLATE_RULE = "self.matches('" + TEMPLATE_PATTERN.replace("\\", "\\\\") + "')"
TEMPLATE_MESSAGE = "template variables must be one of: " + ", ".join(TEMPLATE_VARIABLES)
MAX_QUERY_LENGTH = 2048


def query_field() -> Any:
    """A PromQL template: bounded, and using only the known template variables."""
    return Field(
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=cel((TEMPLATE_RULE, TEMPLATE_MESSAGE)),
    )


def check_template(query: str) -> str:
    if not re.match(TEMPLATE_PATTERN, query):
        raise ValueError(TEMPLATE_MESSAGE)
    return query


# A series selector: a metric name and optional label matchers, no function or aggregation.
# compare, drift and fairness read the raw counter samples of each series since the canary
# took traffic and add up their increases themselves (resets handled, no extrapolation), so
# they need the series, not a rate or a sum.
SELECTOR_PATTERN = r"^\s*[a-zA-Z_:][a-zA-Z0-9_:]*\s*(\{.*\})?\s*$"
SELECTOR_RULE = "self.matches('" + SELECTOR_PATTERN.replace("\\", "\\\\") + "')"
SELECTOR_MESSAGE = (
    'must be a series selector such as model_feedback_total{version="{{ version }}"}, '
    "without sum(), rate() or a range"
)


def selector_field(**default: Any) -> Any:
    return Field(
        **default,
        max_length=MAX_QUERY_LENGTH,
        min_length=1,
        json_schema_extra=cel((TEMPLATE_RULE, TEMPLATE_MESSAGE), (SELECTOR_RULE, SELECTOR_MESSAGE)),
    )


def check_selector(query: str | None) -> str | None:
    if query is None:
        return None
    check_template(query)
    if not re.match(SELECTOR_PATTERN, query):
        raise ValueError(SELECTOR_MESSAGE)
    return query
