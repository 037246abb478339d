"""Generate the ModelRollout CRD from the pydantic models.

`make crds` (`python -m modelrollout.api.crd --write .`) writes it to both places it is
committed, crds/ and the chart's crds/; tests fail when either differs from what this renders.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from modelrollout.api.v1alpha1 import (
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    NAME_MESSAGE,
    PLURAL,
    VERSION,
    ModelRolloutSpec,
    ModelRolloutStatus,
    RouterSpec,
    capability_rules,
    routers,
)
from modelrollout.api.v1alpha1.rules import exactly_one

Schema = dict[str, Any]
CRD_FILE = f"{GROUP}_{PLURAL}.yaml"

PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stable.version"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canary.version"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.currentStep"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _exclusive_bounds(node: Schema) -> None:
    """OpenAPI v3.0 says an exclusive bound as the number plus a boolean flag."""
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[inclusive] = node[bound]
            node[bound] = True


def _structural(schema: Schema, defs: dict[str, Schema]) -> Schema:
    """Turn one pydantic JSON Schema node into a structural OpenAPI v3 node."""
    node = dict(schema)
    ref = node.pop("$ref", None)
    if ref is not None:
        node = {**defs[ref.rsplit("/", 1)[1]], **node}
    variants = node.pop("anyOf", None)
    if variants is not None:
        concrete = [v for v in variants if v.get("type") != "null"]
        if node.get("x-kubernetes-int-or-string"):
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        elif len(concrete) == 1:
            node = {**_structural(concrete[0], defs), **node}
        else:
            raise ValueError(f"a union cannot be made structural: {variants}")
    node.pop("title", None)
    _exclusive_bounds(node)
    if node.get("default", 0) is None:
        del node["default"]
    if "properties" in node:
        node["type"] = "object"
        node.pop("additionalProperties", None)  # `false` is not allowed next to properties
        node["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
    elif node.get("x-kubernetes-preserve-unknown-fields"):
        node["type"] = "object"
        node.pop("additionalProperties", None)
    elif node.get("type") == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            node["additionalProperties"] = _structural(extra, defs)
        elif extra is False or extra is None:  # an empty model: an object with no fields
            node.pop("additionalProperties", None)
            node["properties"] = {}
    if "items" in node:
        node["items"] = _structural(node["items"], defs)
    return node


def openapi_schema(model: type[Any]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def spec_schema(plugged: dict[str, type[RouterSpec]] | None = None) -> Schema:
    """The spec's schema; with `plugged`, routers beside the product's (a test-only router, by
    its key under spec.traffic): their fields, exactly one router in all, and the steps each
    cannot express refused, as the product's own routers are (api/v1alpha1/traffic.py)."""
    schema = openapi_schema(ModelRolloutSpec)
    if not plugged:
        return schema
    traffic = schema["properties"]["traffic"]
    for key, kind in plugged.items():
        traffic["properties"][key] = openapi_schema(kind)
    every = exactly_one("traffic", *routers(), *plugged)
    traffic["x-kubernetes-validations"] = [
        {"rule": every.cel, "message": every.message}
        if v["message"].startswith("traffic needs exactly one")
        else v
        for v in traffic["x-kubernetes-validations"]
    ]
    schema["x-kubernetes-validations"] += [
        dict(zip(("rule", "message", "fieldPath"), rule.entry(), strict=False))
        for rule in capability_rules(plugged)
    ]
    return schema


def build_crd(plugged: dict[str, type[RouterSpec]] | None = None, group: str = GROUP
              ) -> dict[str, Any]:  # fmt: skip
    """The CRD; `plugged` and another `group` for a test that installs it beside the product's
    (the admission of a test-only router, tests/e2e/test_admission.py)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{group}"},
        "spec": {
            "group": group,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["mro"],
                "categories": ["ml"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Rolls out a new version of a model on evidence.",
                            "required": ["spec"],
                            "x-kubernetes-validations": [
                                {
                                    "rule": f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                                    "message": NAME_MESSAGE,
                                }
                            ],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(plugged),
                                "status": openapi_schema(ModelRolloutStatus),
                            },
                        }
                    },
                }
            ],
        },
    }


# Where the CRD is committed, relative to the repository's root: for kubectl, and for Helm.
COPIES = ("crds", "charts/modelrollout/crds")


def render() -> str:
    header = "# Generated by `make crds` from modelrollout/api; do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def write(root: Path) -> list[Path]:
    """Write the CRD to every place it is committed under `root`."""
    written = []
    for copy in COPIES:
        path = root / copy / CRD_FILE
        path.write_text(render())
        written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        for path in write(Path(sys.argv[2] if len(sys.argv) > 2 else ".")):
            print(f"wrote {path}")
    else:
        sys.stdout.write(render())
