// Package testbed starts the real dependencies a test needs — kube-apiserver
// and etcd (envtest), PostgreSQL 15, Vault in dev mode, and a Kafka-protocol
// broker (kfake) — each on free loopback ports in a temp dir, and tears them
// down when the test ends. Tool binaries come from hack/build-tool.sh's cache
// (or the TEST_ASSET_* / VAULT_BIN variables), so packages can run in parallel.
//
//	bed := testbed.Start(t, testbed.Needs{Kube: true, Postgres: true, Vault: true})
package testbed
