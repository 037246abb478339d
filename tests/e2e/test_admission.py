"""Admission: the generated CRD, installed in the real API server, refuses bad specs with a
message naming the field, and accepts the examples."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

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
