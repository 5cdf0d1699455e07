// Package signing makes and uses webhook signing secrets: generation in the
// Standard Webhooks format (whsec_ + base64), and the signatures receivers
// verify.
package signing

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// SecretPrefix marks a signing secret, so scanners recognise a leaked one.
const SecretPrefix = "whsec_"

// secretBytes is the entropy of a generated secret (Standard Webhooks allows 24-64).
const secretBytes = 32

// MinImportedSecretLength is the shortest secret accepted from a user's Secret.
const MinImportedSecretLength = 16

// GenerateSecret returns a new random signing secret, whsec_ + base64 of 32 bytes.
func GenerateSecret() (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate signing secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}
