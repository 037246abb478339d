"""The local control plane is a real one: workloads schedule, become Ready and get endpoints;
CRD schemas are enforced; RBAC is on."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from modelrollout.testing.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.cluster

LABELS = {"app": "echo"}


def _deployment(replicas: int) -> client.V1Deployment:
    container = client.V1Container(
        name="server",
        image="registry.invalid/echo:1",
        ports=[client.V1ContainerPort(container_port=8080)],
    )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="echo"),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def _ready_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector="app=echo").items
    return [
        p for p in pods
        if any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
    ]  # fmt: skip


def test_server_reports_the_version_it_was_built_from(cluster: LocalCluster) -> None:
    version = cluster.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.36.' in version


def test_deployment_of_three_replicas_becomes_available(
    kube: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    # Given a Deployment of 3 replicas
    apps.create_namespaced_deployment(namespace, _deployment(3))

    # When the controllers, scheduler and kwok have done their work
    def available() -> bool:
        status = apps.read_namespaced_deployment_status("echo", namespace).status
        return status.available_replicas == 3

    # Then it is Available with 3 Ready pods, each bound to a kwok node
    assert wait_for(available, timeout=60), "Deployment never became Available"
    pods = _ready_pods(core, namespace)
    assert len(pods) == 3
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)
    assert all(p.status.pod_ip for p in pods)


def test_service_gets_endpoints(kube: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    discovery = client.DiscoveryV1Api(kube)
    # Given two ready pods behind a Service
    apps.create_namespaced_deployment(namespace, _deployment(2))
    core.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="echo"),
            spec=client.V1ServiceSpec(
                selector=LABELS, ports=[client.V1ServicePort(port=80, target_port=8080)]
            ),
        ),
    )

    # When the endpoint-slice controller has seen them
    def ready_addresses() -> set[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=echo"
        ).items
        return {
            address
            for s in slices
            for e in (s.endpoints or [])
            if e.conditions and e.conditions.ready
            for address in e.addresses
        }

    # Then the Service's endpoints are exactly the pods' IPs, on the target port
    assert wait_for(lambda: len(ready_addresses()) == 2, timeout=60)
    pod_ips = {p.status.pod_ip for p in _ready_pods(core, namespace)}
    assert ready_addresses() == pod_ips
    service = core.read_namespaced_service("echo", namespace)
    assert service.spec.cluster_ip.startswith("10.96.")


def _httproute(weights: tuple[object, object]) -> dict[str, object]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "model"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["model.example.internal"],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "model-stable", "port": 80, "weight": weights[0]},
                        {"name": "model-canary", "port": 80, "weight": weights[1]},
                    ]
                }
            ],
        },
    }


def test_httproute_is_accepted_and_keeps_its_weights(
    kube: client.ApiClient, namespace: str
) -> None:
    routes = client.CustomObjectsApi(kube)
    args = ("gateway.networking.k8s.io", "v1", namespace, "httproutes")
    # Given a weighted HTTPRoute
    routes.create_namespaced_custom_object(*args, _httproute((95, 5)))
    # When it is read back
    stored = routes.get_namespaced_custom_object(*args, "model")
    # Then the weights are as written
    backends = stored["spec"]["rules"][0]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in backends] == [
        ("model-stable", 95),
        ("model-canary", 5),
    ]


@pytest.mark.parametrize(
    ("weights", "field"),
    [((-1, 5), "weight"), ((95, "five"), "weight"), ((95, 1_000_001), "weight")],
)
def test_invalid_httproute_is_rejected_by_the_crd_schema(
    kube: client.ApiClient, namespace: str, weights: tuple[object, object], field: str
) -> None:
    routes = client.CustomObjectsApi(kube)
    # Given an HTTPRoute with a bad weight, When it is created, Then the API server refuses it
    with pytest.raises(ApiException) as refused:
        routes.create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", _httproute(weights)
        )
    assert refused.value.status == 422
    assert "spec.rules[0].backendRefs[" in refused.value.body
    assert field in refused.value.body


def test_rbac_is_enforced(cluster: LocalCluster, namespace: str) -> None:
    # Given a ServiceAccount with no role bindings
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    # When it asks to list Secrets, Then it is denied (RBAC authorization is on)
    who = f"--as=system:serviceaccount:{namespace}:nobody"
    answer = cluster.kubectl("auth", "can-i", "list", "secrets", "-n", namespace, who, check=False)
    assert answer.stdout.strip() == "no"
    denied = cluster.kubectl("get", "secrets", "-n", namespace, who, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
