"""Fresh certificates for one local control plane, made with the openssl command.

One CA signs a single admin certificate (O=system:masters, which bypasses RBAC) that is also the
API server's serving certificate, as kwokctl does; a separate RSA key signs service-account tokens.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelrollout.testing.processes import ControlPlaneError

_SANS = (
    "DNS:localhost,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
)


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "3650", "-subj", "/CN=modelrollout-test-ca",
             "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-subj", "/O=system:masters/CN=admin",
             "-keyout", "admin.key", "-out", "admin.csr", cwd=d)  # fmt: skip
    (d / "admin.ext").write_text(
        f"subjectAltName={_SANS}\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "3650", "-extfile", "admin.ext",
             "-out", "admin.crt", cwd=d)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    return Pki(
        ca_cert=d / "ca.crt",
        ca_key=d / "ca.key",
        admin_cert=d / "admin.crt",
        admin_key=d / "admin.key",
        sa_key=d / "sa.key",
        sa_pub=d / "sa.pub",
    )


def render_kubeconfig(server: str, pki: Pki, context: str = "modelrollout-local") -> str:
    """A kubeconfig with absolute paths to the admin credentials (JSON is valid YAML)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": context,
                    "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate": str(pki.admin_cert),
                        "client-key": str(pki.admin_key),
                    },
                }
            ],
            "contexts": [{"name": context, "context": {"cluster": context, "user": "admin"}}],
            "current-context": context,
        },
        indent=2,
    )
