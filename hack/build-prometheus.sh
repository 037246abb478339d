#!/usr/bin/env bash
# Build Prometheus from its Go module into a cache directory outside the repository, keyed by its
# version and Go's: Debian's package is built without the Kubernetes service discovery, which the
# local data plane's Prometheus uses to find pods as a cluster's does. The web UI's assets are not
# built (no npm here); the HTTP API, which the operator and the tests use, is complete. Prints the
# path of the prometheus binary on its last line.
set -euo pipefail
# shellcheck source=cache.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cache.sh"

out="$root/tools/prometheus-${PROMETHEUS_MODULE_VERSION}_${gover}"
begin_build build-prometheus "$out" "$out/bin/prometheus" "$PROMETHEUS_MODULE_VERSION"
wrapper_module "$work" github.com/prometheus/prometheus "$PROMETHEUS_MODULE_VERSION" \
  github.com/prometheus/prometheus/cmd/prometheus >/dev/null
version="github.com/prometheus/common/version"
(cd "$work" && go build -trimpath \
  -ldflags "-s -w -X $version.Version=$PROMETHEUS_MODULE_VERSION -X $version.Branch=modelrollout" \
  -o "$out/bin/prometheus" github.com/prometheus/prometheus/cmd/prometheus)
finish_build build-prometheus "$out" "$out/bin/prometheus"
