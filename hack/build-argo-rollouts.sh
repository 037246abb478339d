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
cached "$out" "$out"
start=$(date +%s)
echo "[build-argo-rollouts] v$ARGO_ROLLOUTS_VERSION" >&2
module="github.com/argoproj/argo-rollouts@v$ARGO_ROLLOUTS_VERSION"
info=$(go mod download -json "$module")
dir=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$info")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out/bin" "$out/crds"
{
  echo "module modelrollout.local/argo-rollouts-wrapper"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
  echo
  echo "require github.com/argoproj/argo-rollouts v$ARGO_ROLLOUTS_VERSION"
  echo
  # the module's own replace block, verbatim
  sed -n '/^replace (/,/^)/p' "$dir/go.mod"
  grep '^replace [^(]' "$dir/go.mod" || true
} > "$work/go.mod"
printf 'package main\n\nimport _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"\n' \
  > "$work/tools.go"
sed -i 's/^package main$/\/\/go:build tools\n\npackage main/' "$work/tools.go"
(cd "$work" && go mod tidy >&2 && go build -trimpath -ldflags "-s -w" -o "$out/bin/rollouts-controller" \
  github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
cp "$dir"/manifests/crds/*.yaml "$out/crds/"
chmod -R u+w "$out"
touch "$out/.complete"
echo "[build-argo-rollouts] done in $(( $(date +%s) - start )) s" >&2
echo "$out"
