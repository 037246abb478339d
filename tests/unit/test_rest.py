"""The operator's own API client finds its server and credentials as kubectl and a pod would:
the kubeconfig's current context (paths relative to it, or data embedded in it), or the pod's
ServiceAccount; and it builds the paths the API server serves."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from modelrollout.k8s import rest
from modelrollout.k8s.cluster import terminating
from modelrollout.k8s.rest import ApiError, Connection, path


def kubeconfig(tmp_path: Path, cluster: dict[str, object], user: dict[str, object]) -> Path:
    config = {
        "current-context": "here",
        "contexts": [{"name": "here", "context": {"cluster": "c", "user": "u"}},
                     {"name": "elsewhere", "context": {"cluster": "x", "user": "x"}}],
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
    }  # fmt: skip
    file = tmp_path / "config"
    file.write_text(json.dumps(config))
    return file


def test_a_kubeconfig_with_relative_paths_is_read_relative_to_itself(tmp_path: Path) -> None:
    found = Connection.from_kubeconfig(kubeconfig(
        tmp_path, {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"},
        {"client-certificate": "admin.crt", "client-key": "/abs/admin.key"}))  # fmt: skip
    assert found.server == "https://127.0.0.1:6443"
    assert found.ca_file == str(tmp_path / "ca.crt")
    assert found.cert_file == str(tmp_path / "admin.crt")
    assert found.key_file == "/abs/admin.key"
    assert found.token is None


def test_embedded_credentials_become_private_files(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    found = Connection.from_kubeconfig(kubeconfig(
        tmp_path, {"server": "https://k8s:443",
                   "certificate-authority-data": base64.b64encode(pem).decode()},
        {"token": "secret-token"}))  # fmt: skip
    assert found.ca_file is not None
    assert Path(found.ca_file).read_bytes() == pem
    assert Path(found.ca_file).stat().st_mode & 0o077 == 0  # only this user can read it
    assert found.token == "secret-token"


def test_a_kubeconfig_without_its_context_says_which(tmp_path: Path) -> None:
    file = tmp_path / "config"
    file.write_text(json.dumps({"current-context": "gone", "contexts": []}))
    with pytest.raises(ValueError, match="no current context, cluster or user 'gone'"):
        Connection.from_kubeconfig(file)


def test_in_a_pod_the_service_account_is_used(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    (tmp_path / "token").write_text("sa-token\n")
    monkeypatch.setattr(rest, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    found = Connection.load()
    assert found.server == "https://10.96.0.1:443"
    assert found.token_file == str(tmp_path / "token")
    assert found.ca_file == str(tmp_path / "ca.crt")
    # and the token is read from the file (the kubelet rotates it)
    assert rest.Rest(found)._authorization() == {"Authorization": "Bearer sa-token"}


def test_paths_name_the_core_group_and_others_as_the_api_server_serves_them() -> None:
    assert path("", "v1", "secrets", "ml", "creds") == "/api/v1/namespaces/ml/secrets/creds"
    assert path("apps", "v1", "deployments", "ml") == "/apis/apps/v1/namespaces/ml/deployments"
    status = path("modelrollout.io", "v1alpha1", "modelrollouts", "ml", "fraud",
                  subresource="status")  # fmt: skip
    assert status == "/apis/modelrollout.io/v1alpha1/namespaces/ml/modelrollouts/fraud/status"


def test_a_refusal_because_the_namespace_is_being_deleted_is_told_by_its_cause() -> None:
    # The API server's answer to an apply in a terminating namespace, as it sent it (1.36.3)
    body = json.dumps({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden",
        "message": 'services "s" is forbidden: unable to create new content in namespace doomed '
                   "because it is being terminated",
        "details": {"name": "s", "kind": "services", "causes": [
            {"reason": "NamespaceTerminating", "message": "namespace doomed is being terminated",
             "field": "metadata.namespace"}]},
        "code": 403,
    })  # fmt: skip
    assert terminating(ApiError(403, "Forbidden", body))
    forbidden = json.dumps({"kind": "Status", "reason": "Forbidden", "code": 403,
                            "message": 'services "s" is forbidden: User "x" cannot'})  # fmt: skip
    assert not terminating(ApiError(403, "Forbidden", forbidden))
    assert not terminating(ApiError(403, "Forbidden", "not JSON"))
