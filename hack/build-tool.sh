#!/usr/bin/env bash
# Builds one test-bed tool (kube-apiserver, etcd, vault) from the Go module
# proxy into a cache outside the clone, keyed by version, and prints its path.
# A cached binary is reused, so only the first run on a machine pays the build.
set -euo pipefail

tool="${1:?usage: build-tool.sh kube-apiserver|etcd|vault|helm}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${INTEGRATION_OPERATOR_CACHE:-$HOME/.cache/integration-operator}"

case "$tool" in
  kube-apiserver) version=v1.37.2; pkg=k8s.io/kubernetes/cmd/kube-apiserver; flags=() ;;
  etcd)           version=v3.6.16; pkg=go.etcd.io/etcd/server/v3;            flags=() ;;
  vault)          version=v1.21.0; pkg=github.com/hashicorp/vault;           flags=(-trimpath -ldflags=-s\ -w) ;;
  helm)           version=v3.19.0; pkg=helm.sh/helm/v3/cmd/helm;             flags=() ;;
  *) echo "unknown tool: $tool" >&2; exit 2 ;;
esac

out="$cache/bin/$tool-$version/$tool"
mkdir -p "$(dirname "$out")"
# Test packages run in parallel and may ask at once: one builds, the rest wait.
exec 9>"$out.lock"
flock 9
if [[ ! -x "$out" ]]; then
  echo "building $tool $version into $out (first time only)" >&2
  start=$(date +%s)
  if [[ -d "$here/tools/$tool" ]]; then
    (cd "$here/tools/$tool" && go build "${flags[@]}" -o "$out.tmp" "$pkg")
  else
    # A tool whose own go.mod builds it as is: go install pins it by version.
    tmpbin="$(mktemp -d)"
    GOBIN="$tmpbin" go install "$pkg@$version"
    mv "$tmpbin/$tool" "$out.tmp" && rmdir "$tmpbin"
  fi
  mv "$out.tmp" "$out"
  echo "built $tool in $(( $(date +%s) - start ))s" >&2
fi
echo "$out"
