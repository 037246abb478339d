#!/usr/bin/env bash
# Install what the operating system must provide, from Debian's packages (we run as root).
# Idempotent and quiet when everything is already there.
set -euo pipefail

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v prometheus >/dev/null || need+=(prometheus)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
# Argo CD runs health checks and actions in Lua 5.1 (gopher-lua); the tests run ours in the same.
command -v lua5.1 >/dev/null || need+=(lua5.1)
# The process node's pods run in a private network namespace (unshare, nsenter; ip sets its lo).
command -v ip >/dev/null || need+=(iproute2)
{ command -v unshare && command -v nsenter; } >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "system-deps: missing ${need[*]}; run as root or: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Go builds the upstream Kubernetes components (not the product). Debian's Go is too old for
# Kubernetes 1.36 (it needs go >= 1.26.0), so the machine's own toolchain is required.
if ! command -v go >/dev/null; then
  echo "system-deps: Go >= 1.26 is required to build the local control plane, and none is on PATH" >&2
  exit 1
fi
v=$(go env GOVERSION | sed 's/^go//')
major=${v%%.*}; rest=${v#*.}; minor=${rest%%.*}
if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 26 ]; }; then
  echo "system-deps: Go $v is too old; Kubernetes 1.36 modules need go >= 1.26.0" >&2
  exit 1
fi
