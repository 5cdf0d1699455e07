package credentials

import (
	"crypto/sha256"
	"encoding/hex"
)

// fingerprintBytes is how much of the digest is kept: 32 bits. A random
// guess matches one time in four billion, so guessing cannot reach bcrypt
// (nor spend the client's bcrypt budget); the stored 32 bits of a ~256-bit
// generated secret leave 224 unknown, so the record is no easier to attack
// than its bcrypt hash.
const fingerprintBytes = 4

// Fingerprint is the short pre-check of a generated secret kept next to its
// bcrypt hash. It is sound only because our secrets are high-entropy random
// strings; it must never be used for a human-chosen password.
func Fingerprint(clientID, secret string) string {
	h := sha256.New()
	h.Write([]byte("ss3 secret fingerprint v1\x00"))
	h.Write([]byte(clientID))
	h.Write([]byte{0})
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil)[:fingerprintBytes])
}
