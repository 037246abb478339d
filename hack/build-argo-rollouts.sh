#!/usr/bin/env bash
# Build Argo Rollouts' controller from its Go module into a cache directory outside the repository,
# keyed by its version and Go's, for the peer benchmark (bench/peer.py). Its go.mod pins k8s.io
# staging modules and two forks with `replace`, which only the main module's go.mod can apply, so a
# wrapper module repeats that block. Prints the cache directory (bin/rollouts-controller, crds/) on
# its last line.
set -euo pipefail
# shellcheck source=cache.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cache.sh"
out="$root/tools/argo-rollouts-v${ARGO_ROLLOUTS_VERSION}_${gover}"
begin_build build-argo-rollouts "$out" "$out" "v$ARGO_ROLLOUTS_VERSION"
mkdir -p "$out/crds"
dir=$(wrapper_module "$work" github.com/argoproj/argo-rollouts "v$ARGO_ROLLOUTS_VERSION" \
  github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
(cd "$work" && go build -trimpath -ldflags "-s -w" -o "$out/bin/rollouts-controller" \
  github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
cp "$dir"/manifests/crds/*.yaml "$out/crds/"
finish_build build-argo-rollouts "$out" "$out"
