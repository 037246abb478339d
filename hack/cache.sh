# Sourced by the hack/build-*.sh scripts: the pinned versions, a Go environment that builds from
# the module proxy alone, and where the cache outside the repository is.
#   here   this directory          gover  the Go toolchain's version (part of every cache key)
#   root   the cache root          cached DIR SHOWN: if DIR holds a finished build, print SHOWN
#                                  and exit
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

gover=$(go env GOVERSION)
root="${MODELROLLOUT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelrollout}"

cached() {
  if [ -f "$1/.complete" ]; then
    echo "$2"
    exit 0
  fi
}
