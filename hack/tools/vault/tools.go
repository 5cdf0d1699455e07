//go:build tools

// Package tools pins Vault for the dev-mode test server.
package tools

import _ "github.com/hashicorp/vault"
