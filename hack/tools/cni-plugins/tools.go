//go:build tools

// Package tools pins the reference CNI plugins the single-node cluster of
// make e2e-cluster networks its pods with (a bridge, host-local addresses).
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/meta/portmap"
)
