"""One tick against the real API server: optimistic concurrency on status, refusals."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from modelrollout.controller.tick import Rollout
from modelrollout.testing.cluster import LocalCluster
from modelrollout.testing.fakes import FakeNotifier, real_ticker
from modelrollout.testing.manifests import rollout

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("modelrollout_crd")]


def test_a_tick_on_a_stale_read_changes_nothing(
    cluster: LocalCluster, kube: client.ApiClient, namespace: str
) -> None:
    manifest = rollout()
    del manifest["spec"]["analysis"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    notifier = FakeNotifier()
    ticker, adapter = real_ticker(kube, notifier)
    # Given two tickers read the object at the same moment
    first = adapter.read(namespace, "fraud-detector")
    assert first is not None
    stale = Rollout.from_body(first)
    # When one of them ticks and records the first revision as stable
    assert ticker.tick(Rollout.from_body(first)) is not None
    # Then the other, acting on the read from before, conflicts and changes nothing
    assert ticker.tick(stale) is None
    assert notifier.reasons() == ["Initialized"]
    stored = adapter.read(namespace, "fraud-detector")
    assert stored is not None
    assert stored["status"]["phase"] == "Promoted"
    assert len(client.AppsV1Api(kube).list_namespaced_deployment(namespace).items) == 1


def test_a_rollout_being_deleted_is_not_ticked(
    cluster: LocalCluster, kube: client.ApiClient, namespace: str
) -> None:
    manifest = rollout()
    del manifest["spec"]["analysis"]
    manifest["metadata"]["finalizers"] = ["modelrollout.io/finalizer"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    # Given a rollout whose deletion waits on the operator's finalizer
    cluster.kubectl("delete", "mro", "fraud-detector", "-n", namespace, "--wait=false")
    ticker, _ = real_ticker(kube, FakeNotifier())
    # When the ticker looks at it, Then it stops, and creates nothing for it
    assert ticker.run(namespace, "fraud-detector") is None
    assert client.AppsV1Api(kube).list_namespaced_deployment(namespace).items == []
    assert client.CoreV1Api(kube).list_namespaced_service(namespace).items == []
    cluster.kubectl("patch", "mro", "fraud-detector", "-n", namespace, "--type=merge",
                    "-p", '{"metadata": {"finalizers": null}}')  # fmt: skip
