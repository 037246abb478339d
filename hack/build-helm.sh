#!/usr/bin/env bash
# Build helm from its Go module into a cache directory outside the repository, keyed by the Helm
# and Go versions (separate from the control plane's key, so a Helm bump rebuilds only Helm).
# Prints the path of the helm binary on its last line.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

gover=$(go env GOVERSION)
root="${MODELROLLOUT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelrollout}"
out="$root/tools/helm-v${HELM_VERSION}_${gover}"
if [ -f "$out/.complete" ]; then
  echo "$out/bin/helm"
  exit 0
fi
mkdir -p "$out/bin"
start=$(date +%s)
echo "[build-helm] helm v$HELM_VERSION" >&2
# helm version reads these at run time; without them it says v3.x-dev and an empty commit.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
GOBIN="$out/bin" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
"$out/bin/helm" version --short >&2
touch "$out/.complete"
echo "[build-helm] done in $(( $(date +%s) - start )) s" >&2
echo "$out/bin/helm"
