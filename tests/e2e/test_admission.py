"""Admission: the generated CRD, installed in the real API server, refuses bad specs with a
message naming the field, and accepts the examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.api.crd import build_crd
from modelrollout.testing import ledger
from modelrollout.testing.cluster import LocalCluster
from modelrollout.testing.manifests import (
    EXAMPLE_ROLLOUTS,
    INVALID,
    Invalid,
    abn_rollout,
    examples,
    rollout,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.cluster


def _apply(cluster: LocalCluster, namespace: str, manifest: dict[str, object]) -> tuple[int, str]:
    result = cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=False
    )
    return result.returncode, result.stderr


@pytest.mark.usefixtures("modelrollout_crd")
def test_a_valid_rollout_is_admitted_with_defaults(cluster: LocalCluster, namespace: str) -> None:
    # Given a valid ModelRollout, When it is applied
    code, err = _apply(cluster, namespace, rollout())
    # Then it is stored, with the schema's defaults filled in, and listed with its columns
    assert code == 0, err
    stored = json.loads(
        cluster.kubectl("get", "mro", "fraud-detector", "-n", namespace, "-o", "json").stdout
    )
    assert stored["spec"]["progressDeadline"] == "10m"
    assert stored["spec"]["analysis"]["noData"] == "inconclusive"
    header = cluster.kubectl("get", "modelrollouts", "-n", namespace).stdout.splitlines()[0]
    assert header.split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP", "AGE"]


@pytest.mark.usefixtures("modelrollout_crd")
def test_an_abn_rollout_is_admitted(cluster: LocalCluster, namespace: str) -> None:
    code, err = _apply(cluster, namespace, abn_rollout())
    assert code == 0, err


@pytest.mark.usefixtures("modelrollout_crd")
def test_the_examples_are_admitted(cluster: LocalCluster, namespace: str) -> None:
    files = sorted({path for path, _ in examples(ROOT)})
    assert len(examples(ROOT)) == EXAMPLE_ROLLOUTS
    for path in files:
        result = cluster.kubectl("apply", "-n", namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


@pytest.mark.usefixtures("modelrollout_crd")
def test_the_user_guides_rollout_is_admitted(cluster: LocalCluster, namespace: str) -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    shown = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "kind: ModelRollout" in b]
    assert shown
    for block in shown:
        manifest = yaml.safe_load(block)
        manifest["metadata"]["namespace"] = namespace
        code, err = _apply(cluster, namespace, manifest)
        assert code == 0, err


@pytest.mark.usefixtures("modelrollout_crd")
@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.why)
def test_an_invalid_rollout_is_refused_naming_the_field(
    cluster: LocalCluster, namespace: str, case: Invalid
) -> None:
    # Given an invalid ModelRollout, When it is applied
    code, err = _apply(cluster, namespace, case.manifest())
    # Then the API server refuses it, naming the bad field
    assert code != 0, f"admitted: {case.why}"
    assert case.field in err, f"the error does not name {case.field}: {err}"


@pytest.mark.usefixtures("modelrollout_crd")
def test_a_name_too_long_for_the_services_it_derives_is_refused(
    cluster: LocalCluster, namespace: str
) -> None:
    # Given a name of 57 characters, whose NAME-canary Service could not exist
    too_long = rollout(name="f" * 57)
    # When it is applied, Then the API server refuses it and says why
    code, err = _apply(cluster, namespace, too_long)
    assert code != 0, "a 57-character name was admitted"
    assert "metadata.name must be at most 56 characters" in err, err
    # And 56 characters, the longest that works, is admitted
    code, err = _apply(cluster, namespace, rollout(name="f" * 56))
    assert code == 0, err


def test_a_cohort_step_on_a_router_that_cannot_match_headers_is_refused(
    cluster: LocalCluster, namespace: str
) -> None:
    # Given the CRD rendered with the test-only ledger router plugged in (testing/ledger.py:
    # weights only), installed beside the product's under a group and names of its own (the
    # same kind, plural or short name would make `kubectl get mro` ambiguous for every later
    # test of the session)
    group, kind, plural = "ledger.modelrollout.test", "LedgerRollout", "ledgerrollouts"
    plugged = build_crd(ledger.TRAFFIC, group=group)
    name = plugged["metadata"]["name"] = f"{plural}.{group}"
    plugged["spec"]["names"] = {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                                "singular": kind.lower()}  # fmt: skip
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(plugged))
    try:
        cluster.established(name)

        def on(traffic: dict[str, object], steps: list[dict[str, object]]) -> dict[str, Any]:
            manifest: dict[str, Any] = rollout()
            manifest["apiVersion"] = f"{group}/v1alpha1"
            manifest["kind"] = kind
            manifest["spec"]["traffic"] = traffic
            manifest["spec"]["strategy"]["steps"] = steps
            del manifest["spec"]["analysis"]
            return manifest

        cohort = [{"cohort": {"match": [{"headers": [{"name": "x-tier", "exact": "internal"}]}]}},
                  {"setWeight": 20}]  # fmt: skip
        # When a cohort step names the router that cannot match headers
        code, err = _apply(cluster, namespace, on({"ledger": {}}, cohort))
        # Then the API server refuses it, naming the router and the field
        assert code != 0, "a cohort step on the ledger router was admitted"
        assert "spec.strategy.steps[].cohort" in err, err
        assert "traffic.ledger" in err, err
        # And the same router with weights only is admitted, as is the cohort on gatewayAPI
        code, err = _apply(cluster, namespace, on({"ledger": {}}, [{"setWeight": 20}]))
        assert code == 0, err
        gateway = {"gatewayAPI": {"parentRefs": [{"name": "public"}]}}
        code, err = _apply(cluster, namespace, on(gateway, cohort))
        assert code == 0, err
        # And both routers at once are not
        code, err = _apply(cluster, namespace, on({**gateway, "ledger": {}}, [{"setWeight": 20}]))
        assert code != 0, "a rollout naming two routers was admitted"
        assert "exactly one of gatewayAPI or ledger" in err, err
    finally:
        cluster.kubectl("delete", "crd", name, "--timeout=60s", check=False)
