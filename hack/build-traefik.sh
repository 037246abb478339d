#!/usr/bin/env bash
# Build Traefik, the Gateway API implementation of the local data plane, from its Go module into a
# cache directory outside the repository, keyed by its version and Go's. Its go.mod replaces three
# forks and excludes one version, which only the main module's go.mod can apply, so a wrapper
# module repeats those directives. Prints the path of the traefik binary on its last line.
set -euo pipefail
# shellcheck source=cache.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cache.sh"

out="$root/tools/traefik-v${TRAEFIK_VERSION}_${gover}"
# The traefik.io CRDs (TraefikService mirrors for the shadow step), straight from the module
# cache, beside the binary; also into a build cached before they were wanted.
crds() {
  local dir
  dir=$(go mod download -json "github.com/traefik/traefik/v3@v$TRAEFIK_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$out/crds"
  cp "$dir/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" \
    "$out/crds/traefik.io.yaml"
  chmod -R u+w "$out/crds"
}
if [ -f "$out/.complete" ] && [ ! -f "$out/crds/traefik.io.yaml" ]; then crds; fi
begin_build build-traefik "$out" "$out/bin/traefik" "v$TRAEFIK_VERSION"
wrapper_module "$work" github.com/traefik/traefik/v3 "v$TRAEFIK_VERSION" \
  github.com/traefik/traefik/v3/cmd/traefik >/dev/null
version="github.com/traefik/traefik/v3/pkg/version"
(cd "$work" && go build -trimpath \
  -ldflags "-s -w -X $version.Version=v$TRAEFIK_VERSION -X $version.Codename=modelrollout" \
  -o "$out/bin/traefik" github.com/traefik/traefik/v3/cmd/traefik)
crds
finish_build build-traefik "$out" "$out/bin/traefik"
