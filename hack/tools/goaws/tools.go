//go:build tools

// Package tools pins goaws, the SQS-compatible server the tests deliver
// to (its command lives in app/cmd, so it is built here under its name).
package tools

import _ "github.com/Admiral-Piett/goaws/app/cmd"
