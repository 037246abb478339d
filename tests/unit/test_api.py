"""The API models: the generated CRD is current, and the models refuse what admission refuses."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from modelrollout.api.crd import CRD_FILE, render
from modelrollout.api.v1alpha1 import (
    PHASES,
    VERDICTS,
    WEBHOOK_EVENTS,
    ModelRolloutSpec,
    ModelRolloutStatus,
    StatusEdit,
)
from modelrollout.testing.manifests import (
    EXAMPLE_ROLLOUTS,
    INVALID,
    Invalid,
    abn_rollout,
    examples,
    rollout,
)

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_is_generated_from_the_models() -> None:
    committed = (ROOT / "crds" / CRD_FILE).read_text()
    assert committed == render(), "crds/ is stale: run `make crds`"


def test_crd_has_status_subresource_and_printer_columns() -> None:
    version = yaml.safe_load(render())["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Stable", "Canary", "Weight", "Step", "Age"]


def test_examples_are_valid() -> None:
    found = examples(ROOT)
    assert len(found) == EXAMPLE_ROLLOUTS, [str(path) for path, _ in found]
    for _, document in found:
        ModelRolloutSpec.model_validate(document["spec"])


def test_defaults_fill_what_the_user_left_out() -> None:
    spec = ModelRolloutSpec.model_validate(rollout()["spec"])
    assert spec.progress_deadline == "10m"
    assert spec.scale_down_delay == "30s"
    assert spec.service.port == 80
    assert spec.analysis is not None
    assert (spec.analysis.failure_limit, spec.analysis.inconclusive_limit) == (0, 3)
    assert spec.analysis.consecutive_error_limit == 4
    assert spec.analysis.no_data == "inconclusive"


def test_status_round_trips_through_its_wire_form() -> None:
    wire = {
        "phase": "Progressing",
        "stable": {"revision": "5d8f7c", "version": "v1"},
        "canary": {"revision": "9b1e44", "version": "v2"},
        "currentStep": 1,
        "canaryWeight": 25,
        "analysis": {"counters": {"failed": 0, "inconclusive": 1, "consecutiveErrors": 2}},
    }
    status = ModelRolloutStatus.model_validate(wire)
    assert status.analysis is not None
    assert status.analysis.counters.consecutive_errors == 2
    assert status.model_dump(by_alias=True, exclude_none=True)["canaryWeight"] == 25


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.why)
def test_models_refuse_what_admission_refuses(case: Invalid) -> None:
    with pytest.raises(ValidationError) as refused:
        ModelRolloutSpec.model_validate(case.manifest()["spec"])
    # An error sits on the field admission names, or on its parent or child (a model-level rule
    # reports on the model, a field rule on the field); a spec-wide rule must name the field.
    expected = case.location

    def names_the_field(error: Any) -> bool:
        loc = tuple(error["loc"])
        if not loc:
            return str(expected[0]) in error["msg"]
        return loc[: len(expected)] == expected or expected[: len(loc)] == loc

    errors = refused.value.errors()
    assert any(names_the_field(e) for e in errors), f"{case.field}: pydantic reported {errors}"


def test_no_message_is_written_twice_in_the_api() -> None:
    """Each rule's message is declared once (a Rule gives both the CEL and the model check)."""
    seen: dict[str, str] = {}
    repeated = []
    for path in sorted((ROOT / "operator" / "modelrollout" / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if len(text) >= 24 and " " in text and not text.startswith(("\n", " ")):
                    if text in seen:
                        repeated.append(f"{text!r} ({seen[text]} and {path.name})")
                    seen.setdefault(text, path.name)
    assert repeated == []


def test_no_module_outside_the_api_lists_a_vocabulary() -> None:
    """Phases, verdicts and webhook events are listed once, in api/: a tuple, list, set or dict
    elsewhere that names two or more of one vocabulary is a second copy of it."""
    vocabularies = {"phases": set(PHASES), "verdicts": set(VERDICTS),
                    "webhook events": set(WEBHOOK_EVENTS)}  # fmt: skip
    product = ROOT / "operator" / "modelrollout"
    listed = []
    for path in sorted(product.rglob("*.py")):
        if path.is_relative_to(product / "api") or path.is_relative_to(product / "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict):
                continue
            items = node.keys + node.values if isinstance(node, ast.Dict) else node.elts
            names = {i.value for i in items if isinstance(i, ast.Constant)}
            for vocabulary, members in vocabularies.items():
                if len(names & members) >= 2:
                    listed.append(f"{path.relative_to(product)}:{node.lineno} lists {vocabulary}")
    assert listed == []


def test_a_status_edit_names_exactly_the_status_fields() -> None:
    assert set(StatusEdit.__annotations__) == set(ModelRolloutStatus.model_fields)


def test_full_weight_is_admitted_when_no_signal_is_judged_against_the_stable() -> None:
    """The rule refusing setWeight: 100 with a compare names what it needs: a plan that judges
    the canary only by thresholds may take it to 100% and analyze there."""
    spec = rollout()["spec"]
    spec["strategy"]["steps"] = [{"setWeight": 100}, {"analyze": {"duration": "5m"}}]
    assert ModelRolloutSpec.model_validate(spec).strategy.steps[0].set_weight == 100
    spec["analysis"]["signals"].append({"name": "shift", "drift": {
        "histogram": "model_score_bucket", "against": "offset", "offset": "24h"}})  # fmt: skip
    assert ModelRolloutSpec.model_validate(spec).strategy.steps[0].set_weight == 100
    spec["analysis"]["signals"][-1]["drift"] = {"histogram": "model_score_bucket"}
    with pytest.raises(ValidationError, match=r"setWeight: 100 leaves the stable no traffic"):
        ModelRolloutSpec.model_validate(spec)


def test_an_abn_rollout_is_valid_with_the_phase_defaults() -> None:
    spec = ModelRolloutSpec.model_validate(abn_rollout()["spec"])
    assert [c.version for c in spec.challengers] == ["v3", "v4"]
    assert spec.strategy.abn is not None
    assert (spec.strategy.abn.margin, spec.strategy.abn.alpha) == (0.0, 0.05)
