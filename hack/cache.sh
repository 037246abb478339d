# Sourced by the hack/build-*.sh scripts: the pinned versions, a Go environment that builds from
# the module proxy alone, and where the cache outside the repository is.
#   here   this directory          gover  the Go toolchain's version (part of every cache key)
#   root   the cache root          cached DIR SHOWN: if DIR holds a finished build, print SHOWN
#                                  and exit
shopt -s inherit_errexit  # a failure inside $(...) fails the script too
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

# wrapper_module WORK MODULE VERSION PACKAGE: write into WORK a main module that requires
# MODULE@VERSION with that module's own replace and exclude directives (Go applies them only from
# the main module) and imports PACKAGE, then tidy it. Prints the module's source directory.
wrapper_module() {
  local work=$1 module=$2 version=$3 package=$4 dir
  dir=$(go mod download -json "$module@$version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  {
    echo "module modelrollout.local/wrapper"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\.[0-9]*$//')"
    echo
    echo "require $module $version"
    echo
    sed -n '/^replace (/,/^)/p; /^exclude (/,/^)/p' "$dir/go.mod"
    grep -E '^(replace|exclude) [^(]' "$dir/go.mod" || true
  } > "$work/go.mod"
  printf '//go:build tools\n\npackage main\n\nimport _ "%s"\n' "$package" > "$work/tools.go"
  (cd "$work" && go mod tidy >&2)
  echo "$dir"
}

# begin_build NAME OUT SHOWN WHAT: if OUT is a finished build, print SHOWN and exit; else say what
# is built, start the clock, make OUT/bin and `work`, a temporary directory removed on exit.
begin_build() {
  cached "$2" "$3"
  start=$(date +%s)
  echo "[$1] $4" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$2/bin"
}

# finish_build NAME OUT SHOWN: mark OUT as a finished build, say how long it took, print SHOWN.
finish_build() {
  chmod -R u+w "$2"
  touch "$2/.complete"
  echo "[$1] done in $(( $(date +%s) - start )) s" >&2
  echo "$3"
}
