#!/usr/bin/env bash
# Build helm from its Go module into a cache directory outside the repository, keyed by the Helm
# and Go versions (separate from the control plane's key, so a Helm bump rebuilds only Helm).
# Prints the path of the helm binary on its last line.
set -euo pipefail
# shellcheck source=cache.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cache.sh"
out="$root/tools/helm-v${HELM_VERSION}-k8sdefaults_${gover}"
cached "$out" "$out/bin/helm"
mkdir -p "$out/bin"
start=$(date +%s)
echo "[build-helm] helm v$HELM_VERSION" >&2
# helm version reads these at run time; without them it says v3.x-dev. The Kubernetes version
# `helm template` and `helm lint` assume (else 1.20, which a chart's kubeVersion refuses) is that
# of the client-go Helm was built with, as Helm's own Makefile sets it.
gomod=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
kminor=$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$gomod" | head -1)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags="$ldflags -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kminor"
done
GOBIN="$out/bin" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
"$out/bin/helm" version --short >&2
touch "$out/.complete"
echo "[build-helm] done in $(( $(date +%s) - start )) s" >&2
echo "$out/bin/helm"
