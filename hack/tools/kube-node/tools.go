//go:build tools

// Package tools pins the node and control-loop components of the single-node
// cluster make e2e-cluster runs, at kube-apiserver's version.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
