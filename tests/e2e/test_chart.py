"""The Helm chart against the local control plane: lint, render and dry-run on the API server,
install and uninstall; and its RBAC proven by running the operator as the chart's ServiceAccount
through a whole rollout, then without one verb."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelrollout.testing.cluster import LocalCluster, wait_for
from modelrollout.testing.exporter import ErrorRateExporter
from modelrollout.testing.helm import Helm
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import Story, model_rollout
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster
CHART = str(Path(__file__).resolve().parents[2] / "charts" / "modelrollout")
EVERYTHING = ("--set", "grafanaDashboard.enabled=true", "--set", "operator.tickSeconds=2")


def render(helm: Helm, *values: str, namespace: str = "modelrollout") -> list[dict[str, Any]]:
    out = helm("template", "mr", CHART, "-n", namespace, *values).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_chart_lints_clean_in_every_mode(helm: Helm) -> None:
    for values in ((), ("--set", "watchNamespaces={team-a,team-b}", *EVERYTHING,
                        "--set", "metrics.serviceMonitor.enabled=true")):  # fmt: skip
        result = helm("lint", "--strict", CHART, *values)
        assert "0 chart(s) failed" in result.stdout, result.stdout


def test_bad_values_are_refused_naming_the_value(helm: Helm) -> None:
    for value, path in (("metrics.port=0", "/metrics/port"),
                        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
                        ("operatr.tickSeconds=1", "operatr"),
                        ("image.pullPolicy=Sometimes", "/image/pullPolicy")):  # fmt: skip
        result = helm("template", "mr", CHART, "--set", value, check=False)
        assert result.returncode != 0, value
        assert path in result.stderr, result.stderr


def test_rendered_manifests_are_accepted_by_the_api_server(
    helm: Helm, cluster: LocalCluster, namespace: str
) -> None:
    cluster_wide = render(helm, *EVERYTHING, namespace=namespace)
    kinds = sorted(doc["kind"] for doc in cluster_wide)
    assert kinds == ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Service",
                     "ServiceAccount"]  # fmt: skip
    deployment = next(d for d in cluster_wide if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    namespaced = render(helm, "--set", f"watchNamespaces={{{namespace}}}", namespace=namespace)
    cluster_rules = [r for d in namespaced if d["kind"] == "ClusterRole" for r in d["rules"]]
    # namespaced: only reading CRDs, GatewayClasses (cluster-scoped: a shadow step reads what
    # mirroring its gateway implements) and namespaces (for kopf) is cluster-wide; the rest in a
    # Role
    assert cluster_rules == [
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
         "verbs": ["list", "watch"]},
        {"apiGroups": ["gateway.networking.k8s.io"], "resources": ["gatewayclasses"],
         "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]  # fmt: skip
    assert "Role" in {d["kind"] for d in namespaced}
    monitor = render(helm, "--set", "metrics.serviceMonitor.enabled=true")
    assert "ServiceMonitor" in {d["kind"] for d in monitor}  # its CRD is not installed here
    for docs in (cluster_wide, namespaced):
        stream = "\n---\n".join(json.dumps(d) for d in docs)
        cluster.kubectl("apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-",
                        stdin=stream)  # fmt: skip


def test_install_and_uninstall(helm: Helm, cluster: LocalCluster, namespace: str,
                               modelrollout_crd: None) -> None:  # fmt: skip
    release = f"mr-{uuid.uuid4().hex[:6]}"
    helm("install", release, CHART, "-n", namespace, "--wait", "--timeout", "120s", *EVERYTHING)
    fullname = f"{release}-modelrollout"
    deployment = json.loads(cluster.kubectl("get", "deploy", fullname, "-n", namespace,
                                            "-o", "json").stdout)  # fmt: skip
    assert deployment["status"].get("readyReplicas") == 1
    for kind in ("clusterrole", "clusterrolebinding"):
        cluster.kubectl("get", kind, fullname)
    notes = helm("get", "notes", release, "-n", namespace).stdout
    assert "acting in every namespace" in notes
    helm("uninstall", release, "-n", namespace, "--wait", "--timeout", "120s")
    for kind, ns in (("deploy", namespace), ("sa", namespace), ("clusterrole", None)):
        where = ["-n", ns] if ns else []
        gone = cluster.kubectl("get", kind, fullname, *where, check=False)
        assert gone.returncode != 0, f"{kind} {fullname} left behind"
    # CRDs in a chart's crds/ are never deleted by Helm: the rollouts of every team survive
    cluster.kubectl("get", "crd", "modelrollouts.modelrollout.io")


class Installed:
    """The chart installed in its own namespace; the operator runs out of cluster with its
    ServiceAccount's token, and nothing else."""

    def __init__(self, helm: Helm, cluster: LocalCluster, tmp: Path,
                 watch: str | None = None) -> None:  # fmt: skip
        self.helm, self.cluster = helm, cluster
        suffix = uuid.uuid4().hex[:6]
        self.namespace, self.release = f"mr-system-{suffix}", f"mr-{suffix}"
        self.fullname = f"{self.release}-modelrollout"  # also the ClusterRole's, so unique
        cluster.kubectl("create", "namespace", self.namespace)
        self.watch = watch  # namespaced mode: only this namespace, with a Role
        values = ("--set", f"watchNamespaces={{{watch}}}") if watch else ()
        helm("install", self.release, CHART, "-n", self.namespace, *values)
        sa_config = tmp / "operator-sa.kubeconfig"
        self.kubeconfig = cluster.service_account_kubeconfig(self.namespace, self.fullname,
                                                             sa_config)  # fmt: skip
        self.operator: OperatorProcess | None = None

    def without_verb(self, resource: str, verb: str) -> None:
        self._edit_verb(resource, verb, present=False)

    def with_verb(self, resource: str, verb: str) -> None:
        self._edit_verb(resource, verb, present=True)

    def _edit_verb(self, resource: str, verb: str, *, present: bool) -> None:
        role = json.loads(self.cluster.kubectl("get", "clusterrole", self.fullname,
                                               "-o", "json").stdout)  # fmt: skip
        for rule in role["rules"]:
            if resource in rule["resources"]:
                others = [v for v in rule["verbs"] if v != verb]
                rule["verbs"] = [*others, verb] if present else others
        self.cluster.kubectl("replace", "-f", "-", stdin=json.dumps(role))

    def run_operator(self) -> OperatorProcess:
        env = {"MODELROLLOUT_NAMESPACES": self.watch} if self.watch else {}  # as the chart sets
        self.operator = OperatorProcess(self.kubeconfig, tick_seconds=0.5, env=env)
        self.operator.start()
        return self.operator

    def close(self) -> None:
        if self.operator is not None:
            self.operator.close()
        self.helm("uninstall", self.release, "-n", self.namespace, check=False)
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


@pytest.fixture(params=["cluster", "namespaced"])
def installed(request: pytest.FixtureRequest, helm: Helm, cluster: LocalCluster, *,
              namespace: str, modelrollout_crd: None,
              tmp_path: Path) -> Iterator[Installed]:  # fmt: skip
    watch = namespace if request.param == "namespaced" else None
    chart = Installed(helm, cluster, tmp_path, watch)
    yield chart
    chart.close()


def test_the_chart_role_is_enough_for_a_whole_rollout(
    installed: Installed, cluster: LocalCluster, namespace: str, metrics: PrometheusServer,
    telemetry: ErrorRateExporter, *, gateway: Traefik,
) -> None:  # fmt: skip
    operator = installed.run_operator()
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
    story = Story(cluster, namespace, operator)
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.002)
    story.promoted(model_rollout(metrics.url, "v1"), model_rollout(metrics.url, "v2"))
    # the old revision is removed after scaleDownDelay (the delete verb)
    story.until("one Deployment is left", lambda: len(story.deployments()) == 1, timeout=60)
    log = operator.full_log()
    assert "forbidden" not in log.lower(), log[-3000:]
    assert story.status()["history"][-1]["outcome"] == "Promoted"


@pytest.fixture
def installed_cluster_wide(helm: Helm, cluster: LocalCluster, modelrollout_crd: None,
                           tmp_path: Path) -> Iterator[Installed]:  # fmt: skip
    chart = Installed(helm, cluster, tmp_path)
    yield chart
    chart.close()


@pytest.mark.parametrize(("resource", "verb"), [("services", "patch"), ("httproutes", "create")])
def test_a_missing_verb_is_reported_clearly(
    installed_cluster_wide: Installed, cluster: LocalCluster, namespace: str, *,
    metrics: PrometheusServer, resource: str, verb: str,
) -> None:  # fmt: skip
    installed = installed_cluster_wide
    installed.without_verb(resource, verb)
    operator = installed.run_operator()
    story = Story(cluster, namespace, operator)
    story.apply(model_rollout(metrics.url, "v1"))

    said: list[str] = []

    def reported() -> bool:
        # the message that said it: a tick's own status write clears it for a moment before its
        # refused write puts it back, so a second read may miss it
        said.append(str(story.status().get("message", "")))
        return "permission denied" in said[-1]

    story.until("the rollout says what is forbidden", reported, timeout=60)
    message = said[-1]
    assert f'cannot {verb} resource "{resource}"' in message, message
    assert f"system:serviceaccount:{installed.namespace}:{installed.fullname}" in message

    def forbidden_event() -> bool:
        out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return any(e["reason"] == "Forbidden" for e in json.loads(out)["items"])

    assert wait_for(forbidden_event, timeout=30), "no Forbidden Event"
    # Once the verb is granted again, the rollout goes on and stops saying it is forbidden
    installed.with_verb(resource, verb)
    settled = [("fraud-detector-stable", 100), ("fraud-detector-canary", 0)]
    story.until("the route sends all to stable", lambda: story.route_weights() == settled,
                timeout=30)  # fmt: skip
    story.until("the refusal is taken back", lambda: not story.status().get("message"),
                timeout=30)  # fmt: skip
