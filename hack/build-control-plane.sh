#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd and kwok from the
# Go module proxy into a cache directory outside the repository, keyed by versions, and fetch the
# Gateway API and Istio CRDs from their modules. A finished build leaves a stamp; a warm cache
# returns at once. Prints the cache directory on its last line.
#
# Why wrapper modules: k8s.io/kubernetes and etcd's server module carry replace directives, so
# `go install pkg@version` refuses them (see docs/control-plane.md).
set -euo pipefail
# shellcheck source=cache.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cache.sh"
key="k8s-v${KUBERNETES_VERSION}_etcd-v${ETCD_VERSION}_kwok-v${KWOK_VERSION}_gw-v${GATEWAY_API_VERSION}_istio-v${ISTIO_API_VERSION}_${gover}"
out="$root/controlplane/$key"
cached "$out" "$out"

log() { echo "[build-control-plane] $*" >&2; }
work="$out.work"
mkdir -p "$work" "$out/bin" "$out/crds"
start=$(date +%s)

moddir() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'; }
modfile() { go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])'; }

# --- Kubernetes: one wrapper module, every staging module replaced by its published version ---
K=$KUBERNETES_VERSION; MINOR=$(echo "$K" | cut -d. -f2)
kdir="$work/k8s"; mkdir -p "$kdir"
gomod=$(modfile "k8s.io/kubernetes@v$K")
{
  echo "module local.invalid/k8sbins"; echo; echo "go 1.26.0"; echo
  echo "require k8s.io/kubernetes v$K"; echo; echo "replace ("
  sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*|\1|p' "$gomod" | sort -u |
    while read -r m; do echo "	$m => $m v0.$MINOR.${K##*.}"; done
  echo ")"
} > "$kdir/go.mod"
cat > "$kdir/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
VX=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  VX="$VX -X $p.gitVersion=v$K -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  VX="$VX -X $p.gitCommit=unknown -X $p.buildDate=2026-01-01T00:00:00Z"
done
log "kubernetes v$K: resolving modules"
(cd "$kdir" && go mod tidy -e >/dev/null 2>&1 || true; cd "$kdir" && go mod download)
log "kubernetes v$K: compiling (the slow part on a cold cache)"
(cd "$kdir" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "-s -w $VX" -o "$out/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
"$out/bin/kube-apiserver" --version | grep -q "v$K" || { log "kube-apiserver reports a wrong version"; exit 1; }

# --- etcd: its own wrapper (its server module root is package main) ---
edir="$work/etcd"; mkdir -p "$edir"
printf 'module local.invalid/etcdbin\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$edir/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$edir/tools.go"
log "etcd v$ETCD_VERSION"
(cd "$edir" && go mod tidy >/dev/null 2>&1 || true; cd "$edir" && go build -trimpath -ldflags "-s -w" -o "$out/bin/etcd" go.etcd.io/etcd/server/v3)

# --- kwok: no replace directives, plain go install ---
log "kwok v$KWOK_VERSION"
GOBIN="$out/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
kwokdir=$(moddir "sigs.k8s.io/kwok@v$KWOK_VERSION")
rm -rf "$out/kwok-stages"; cp -r "$kwokdir/kustomize/stage" "$out/kwok-stages"; chmod -R u+w "$out/kwok-stages"

# --- CRDs, straight from the module cache ---
gwdir=$(moddir "sigs.k8s.io/gateway-api@v$GATEWAY_API_VERSION")
mkdir -p "$out/crds/gateway-api"
for f in "$gwdir"/config/crd/standard/*.yaml; do
  grep -q '^kind: CustomResourceDefinition' "$f" && cp "$f" "$out/crds/gateway-api/"
done
istiodir=$(moddir "istio.io/api@v$ISTIO_API_VERSION")
mkdir -p "$out/crds/istio"
cp "$istiodir/kubernetes/customresourcedefinitions.gen.yaml" "$out/crds/istio/istio-crds.yaml"
chmod -R u+w "$out/crds"

rm -rf "$work"
echo "$(( $(date +%s) - start ))" > "$out/.build-seconds"
touch "$out/.complete"
log "done in $(cat "$out/.build-seconds") s"
echo "$out"
