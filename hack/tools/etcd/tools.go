//go:build tools

// Package tools pins etcd for the envtest build.
package tools

import _ "go.etcd.io/etcd/server/v3"
