#!/usr/bin/env bash
# Tears down what test/cluster brought up under its state directory, whatever
# state a run left it in (a failure, a killed test): the processes it started
# (by the pid files it wrote and containerd's init.pid files; shims by their
# working directory, containers by the kubelet's cgroups), the
# mounts under the state directory, the pods' network namespaces, the bridge,
# kube-proxy's iptables rules and the ip_forward setting it changed.
# Idempotent; make e2e-cluster runs it after the test, pass or fail.
set -uo pipefail

dir="${IO_CLUSTER_DIR:-/tmp/io-e2e-cluster}"
[[ -d "$dir" ]] || exit 0

stop_pids() { # pid files...: TERM, wait up to 10 s, then KILL
  local pids=() f p
  for f in "$@"; do
    [[ -f "$f" ]] && p=$(<"$f") && [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && pids+=("$p")
  done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null
  local alive=()
  for _ in $(seq 50); do
    alive=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    ((${#alive[@]})) || return 0
    sleep 0.2
  done
  # Shims whose containerd is gone do not always exit on TERM.
  kill -KILL "${alive[@]}" 2>/dev/null
}

# The node first (so it restarts nothing), then containers, then the rest.
stop_pids "$dir/pids/kubelet.pid" "$dir/pids/kube-proxy.pid"
shopt -s nullglob
tasks="$dir/containerd/state/io.containerd.runtime.v2.task"
stop_pids "$tasks"/*/*/init.pid
stop_pids "$tasks"/*/*/shim.pid # containerd 2.x writes these; 1.6 does not (below)
stop_pids "$dir"/pids/*.pid
# Whatever those files missed: shims run in their bundle under the state
# directory, containers in the kubelet's /kubepods cgroups (no one else's).
ours=()
for proc in /proc/[0-9]*; do
  cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
  if [[ "$cwd" == "$dir"/* ]] || grep -q ':/kubepods' "$proc/cgroup" 2>/dev/null; then
    ours+=("${proc#/proc/}")
  fi
done
((${#ours[@]})) && kill -KILL "${ours[@]}" 2>/dev/null && sleep 1
# runc's state of our containers, left when their shims were killed.
for task in "$tasks"/k8s.io/*; do
  rm -rf "/run/containerd/runc/k8s.io/$(basename "$task")"
done

# Mounts under the state directory (overlay rootfs, secrets, shm), deepest first.
awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
  while read -r m; do umount -l "$m" 2>/dev/null; done

# Network namespaces the CRI created during the run (not those from before).
if [[ -f "$dir/netns.before" ]]; then
  for ns in /var/run/netns/cni-*; do
    grep -qxF "$(basename "$ns")" "$dir/netns.before" || ip netns delete "$(basename "$ns")" 2>/dev/null
  done
fi
ip link delete io-cni0 2>/dev/null

if [[ -x "$dir/bin/kube-proxy" ]]; then
  "$dir/bin/kube-proxy" --cleanup >/dev/null 2>&1
fi
# The kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
# KUBE-IPTABLES-HINT), which kube-proxy --cleanup leaves: the jumps to them
# first, then the chains. Only this cluster runs Kubernetes on the host.
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle; do
    "$ipt-save" -t "$table" 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' |
      while read -r rule; do eval "$ipt -t $table -D ${rule#-A }" 2>/dev/null; done
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
      "$ipt" -t "$table" -F "$chain" 2>/dev/null
    done
    for chain in $("$ipt-save" -t "$table" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'); do
      "$ipt" -t "$table" -X "$chain" 2>/dev/null
    done
  done
done
if [[ -f "$dir/ip_forward.before" ]]; then
  cat "$dir/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
fi
rm -rf "$dir"
