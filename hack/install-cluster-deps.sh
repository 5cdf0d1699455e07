#!/usr/bin/env bash
# Installs what make e2e-cluster needs from Debian's packages on top of the
# test bed: a container runtime (containerd, runc), iptables for kube-proxy,
# and the small tools the bring-up uses. Kept out of install-system-deps.sh so
# make test never needs a container runtime. Idempotent.
set -euo pipefail

pkgs=(containerd runc iptables conntrack iproute2 ethtool socat kmod)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-cluster-deps: need root to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Other apt-get runs (make image installs podman) may hold the lock: wait.
  apt=(apt-get -o DPkg::Lock::Timeout=600)
  "${apt[@]}" install -y --no-install-recommends "${missing[@]}" ||
    { "${apt[@]}" update && "${apt[@]}" install -y --no-install-recommends "${missing[@]}"; }
fi
# Debian's package starts containerd under systemd where there is one; the
# bring-up runs its own containerd with its own state directories instead.
