"""The model-server telemetry helper exports the conventions the signals read."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.telemetry import Telemetry


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return samples(registry).get((name, frozenset(labels.items())))


ARM = {"model": "fraud", "version": "v2"}


def test_a_few_lines_export_every_convention() -> None:
    registry = CollectorRegistry()
    telemetry = Telemetry(features={"amount": [10, 100]}, registry=registry)
    model = telemetry.model("fraud", "v2")
    model.inputs({"amount": 50.0, "country": "FR", "unknown": 3.0})
    model.inputs({"amount": 500.0})
    model.request("200", seconds=0.02)
    model.prediction(score=0.9, predicted=1, segment="foreign")
    model.feedback(correct=True)
    r = registry
    assert value(r, "model_requests_total", **ARM, code="200") == 1
    assert value(r, "model_request_duration_seconds_count", **ARM) == 1
    assert value(r, "model_prediction_score_bucket", **ARM, le="1.0") == 1
    assert value(r, "model_feature_category_total", **ARM, feature="country", category="FR") == 1
    assert value(r, "model_predictions_total", **ARM, segment="foreign", predicted="1") == 1
    assert value(r, "model_feedback_total", **ARM, outcome="correct") == 1
    # fixed edges per feature, cumulative, with +Inf; undeclared numeric features are not exported
    bucket = "model_feature_value_bucket"
    assert value(r, bucket, **ARM, feature="amount", le="10.0") == 0
    assert value(r, bucket, **ARM, feature="amount", le="100.0") == 1
    assert value(r, bucket, **ARM, feature="amount", le="+Inf") == 2
    assert not [k for k in samples(r) if ("feature", "unknown") in k[1]]


def test_versions_share_the_families_and_edges() -> None:
    registry = CollectorRegistry()
    telemetry = Telemetry(features={"amount": [10, 100]}, registry=registry)
    for version in ("v1", "v2"):
        telemetry.model("fraud", version).inputs({"amount": 5.0})
    for version in ("v1", "v2"):
        assert value(registry, "model_feature_value_bucket", model="fraud", version=version,
                     feature="amount", le="10.0") == 1  # fmt: skip
