"""Safe substitution of `{{ variable }}` in PromQL templates.

Only the known variables exist (admission refuses others). Every value is checked against the
label-value grammar (or the duration grammar, for `interval`) and escaped for a PromQL string, so
no value can change the shape of the query.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from modelrollout.api.v1alpha1 import DURATION_PATTERN, LABEL_VALUE_PATTERN, TEMPLATE_VARIABLES

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z.]+)\s*\}\}")


class TemplateError(ValueError):
    """A template names an unknown variable, or a value is not safe to substitute."""


def _checked(name: str, value: str) -> str:
    pattern = DURATION_PATTERN if name == "interval" else LABEL_VALUE_PATTERN
    if not re.match(pattern, value):
        raise TemplateError(f"value of {{{{ {name} }}}} is not allowed in a query: {value!r}")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in TEMPLATE_VARIABLES:
            raise TemplateError(f"unknown template variable {{{{ {name} }}}}")
        if name not in values:
            raise TemplateError(f"no value for {{{{ {name} }}}} here")
        return _checked(name, values[name])

    return _PLACEHOLDER.sub(substitute, template)
