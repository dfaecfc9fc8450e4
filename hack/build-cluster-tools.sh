#!/usr/bin/env bash
# Build the test control plane's binaries from Go modules, once per version.
#
# Why: these machines have no Docker and no internet beyond the Go module proxy, so the real
# kube-apiserver, controller-manager, scheduler, kubectl, etcd and helm are compiled from the
# tools modules under hack/tools/ (their go.sum files are committed). The binaries are cached
# outside the repo under $STEPSTONE_TOOLS_CACHE (default ~/.cache/stepstone/tools), in a folder
# named for the versions and a hash of the go.mod/go.sum files, so a second run costs nothing.
#
# Prints the cache's bin directory on its last line of stdout; progress goes to stderr.
# With --check, builds nothing: prints the bin directory and exits 0 if every binary is there,
# else names the missing ones on stderr and exits 3 (the test fixtures use it to skip).
set -euo pipefail

check_only=false
if [ "${1:-}" = "--check" ]; then
  check_only=true
fi

here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
cache_root=${STEPSTONE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stepstone/tools}

modversion() {  # modversion <tools dir> <module path>: the version its go.mod pins
  awk -v m="$2" '$1==m {print $2; exit}' "$tools/$1/go.mod"
}
kube_version=$(modversion kube k8s.io/kubernetes)
key=$(cat "$tools"/*/go.mod "$tools"/*/go.sum | sha256sum | cut -c1-12)
bin="$cache_root/kube-$kube_version-$key/bin"

log() { printf '[build-cluster-tools] %s\n' "$*" >&2; }

if $check_only; then
  missing=""
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl etcd helm; do
    [ -x "$bin/$b" ] || missing+=" $b"
  done
  echo "$bin"
  if [ -n "$missing" ]; then
    log "missing in $bin:$missing"
    exit 3
  fi
  exit 0
fi

mkdir -p "$bin"

build() {  # build <module dir> <package> <output name> [ldflags]
  local dir=$1 pkg=$2 out=$3 ldflags=${4:-}
  if [ -x "$bin/$out" ]; then
    return 0
  fi
  log "building $out from $pkg (first time only; cached in $bin)"
  local start=$SECONDS
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"
  log "built $out in $((SECONDS - start)) s"
}

# Version stamp: helm's kubeVersion checks and `kubectl version` read these.
major=${kube_version#v}; major=${major%%.*}
minor=${kube_version#v*.}; minor=${minor%%.*}
vflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X '$p.gitVersion=$kube_version' -X '$p.gitMajor=$major' -X '$p.gitMinor=$minor'"
  vflags+=" -X '$p.gitCommit=0000000000000000000000000000000000000000' -X '$p.gitTreeState=clean'"
  vflags+=" -X '$p.buildDate=1970-01-01T00:00:00Z'"
done

for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build "$tools/kube" "k8s.io/kubernetes/cmd/$c" "$c" "$vflags"
done
build "$tools/etcd" go.etcd.io/etcd/server/v3 etcd
helm_version=$(modversion helm helm.sh/helm/v3)
build "$tools/helm" helm.sh/helm/v3/cmd/helm helm \
  "-X 'helm.sh/helm/v3/internal/version.version=$helm_version' -X 'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major' -X 'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor'"

echo "$bin"
