#!/usr/bin/env bash
# Builds one test-bed tool (kube-apiserver, etcd, vault, goaws, ...) from the Go module
# proxy into a cache outside the clone, keyed by version, and prints its path.
# A cached binary is reused, so only the first run on a machine pays the build.
set -euo pipefail

tool="${1:?usage: build-tool.sh kube-apiserver|etcd|vault|helm|goaws|otelcol|kubelet|kube-scheduler|kube-controller-manager|kube-proxy|cni-plugins}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${INTEGRATION_OPERATOR_CACHE:-$HOME/.cache/integration-operator}"

case "$tool" in
  kube-apiserver) version=v1.37.2; pkg=k8s.io/kubernetes/cmd/kube-apiserver; flags=() ;;
  etcd)           version=v3.6.16; pkg=go.etcd.io/etcd/server/v3;            flags=() ;;
  vault)          version=v1.21.0; pkg=github.com/hashicorp/vault;           flags=(-trimpath -ldflags=-s\ -w) ;;
  helm)           version=v3.19.0; pkg=helm.sh/helm/v3/cmd/helm;             flags=() ;;
  # The SQS-compatible server the tests deliver to (query protocol).
  goaws)          version=v0.4.5;  pkg=github.com/Admiral-Piett/goaws/app/cmd; flags=(-trimpath) ;;
  # The OpenTelemetry Collector the trace tests export to: a distribution of
  # our own (tools/otelcol/main.go) with the OTLP receiver and the file
  # exporter, every collector module at this one release.
  otelcol)        version=v0.161.0; pkg=.;                                  flags=(-trimpath -ldflags=-s\ -w) ;;
  # The single-node cluster of make e2e-cluster: one module (tools/kube-node)
  # pins all four at kube-apiserver's version.
  kubelet|kube-scheduler|kube-controller-manager|kube-proxy)
                  version=v1.37.2; pkg=k8s.io/kubernetes/cmd/$tool; flags=(); moddir=kube-node ;;
  # A directory of CNI plugins, not one binary: the kubelet's CNI bin dir.
  cni-plugins)    version=v1.10.0; pkg=github.com/containernetworking/plugins/plugins; flags=()
                  plugins=(main/bridge main/loopback ipam/host-local meta/portmap) ;;
  *) echo "unknown tool: $tool" >&2; exit 2 ;;
esac
moddir="${moddir:-$tool}"
# otelcol is our own source, not only a version: a change to it is a new build.
if [[ "$tool" == otelcol ]]; then
  version="$version-$(cat "$here/tools/otelcol/go.mod" "$here/tools/otelcol/main.go" | sha256sum | cut -c1-12)"
fi

out="$cache/bin/$tool-$version/$tool"
mkdir -p "$(dirname "$out")"
# Test packages run in parallel and may ask at once: one builds, the rest wait.
exec 9>"$out.lock"
flock 9
if [[ ! -x "$out" ]]; then
  echo "building $tool $version into $out (first time only)" >&2
  start=$(date +%s)
  if [[ -n "${plugins:-}" ]]; then
    (cd "$here/tools/$moddir" && go build "${flags[@]}" -o "$out.tmp/" "${plugins[@]/#/$pkg/}")
  elif [[ -d "$here/tools/$moddir" ]]; then
    (cd "$here/tools/$moddir" && go build "${flags[@]}" -o "$out.tmp" "$pkg")
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
