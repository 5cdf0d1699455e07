package controllers

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"time"
)

// Keys of the signing secret's data, the same in the owned Kubernetes Secret
// and in Vault, where the dispatcher reads them.
const (
	keyCurrentSecret     = "secret"
	keyPreviousSecret    = "previous"
	keyPreviousExpiresAt = "previous-expires-at"
)

// rotationRecordAnnotation on the owned Secret records the last rotation
// request acted on, next to the secret it produced.
const rotationRecordAnnotation = "integrations.ss3.dev/rotation-request"

// signingState is the signing secret and, during a rotation's grace period,
// the one it replaced.
type signingState struct {
	current           string
	previous          string
	previousExpiresAt time.Time
}

func signingStateFrom(data map[string]string) signingState {
	s := signingState{current: data[keyCurrentSecret], previous: data[keyPreviousSecret]}
	if t, err := time.Parse(time.RFC3339, data[keyPreviousExpiresAt]); err == nil && s.previous != "" {
		s.previousExpiresAt = t
	} else {
		s.previous = ""
	}
	return s
}

func (s signingState) data() map[string]string {
	d := map[string]string{keyCurrentSecret: s.current}
	if s.previous != "" {
		d[keyPreviousSecret] = s.previous
		d[keyPreviousExpiresAt] = s.previousExpiresAt.UTC().Format(time.RFC3339)
	}
	return d
}

// rotate makes next the signing secret and keeps the current one valid until expires.
func (s *signingState) rotate(next string, expires time.Time) {
	s.previous, s.previousExpiresAt = s.current, expires
	s.current = next
}

// expire drops the previous secret once its grace period is over, and says
// whether it did.
func (s *signingState) expire(now time.Time) bool {
	if s.previous != "" && !now.Before(s.previousExpiresAt) {
		s.previous, s.previousExpiresAt = "", time.Time{}
		return true
	}
	return false
}

func bytesToStrings(data map[string][]byte) map[string]string {
	out := make(map[string]string, len(data))
	for k, v := range data {
		out[k] = string(v)
	}
	return out
}

func stringsToBytes(data map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(data))
	for k, v := range data {
		out[k] = []byte(v)
	}
	return out
}

// sameSecretData compares two secret maps without leaking timing.
func sameSecretData(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	equal := 1
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		equal &= subtle.ConstantTimeCompare([]byte(va), []byte(vb))
	}
	return equal == 1
}

func sameSecret(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// ownedSecretName is the Secret that holds a subscription's signing secret,
// shortened with a hash when the subscription's name is long.
func ownedSecretName(subscriptionName string) string {
	const suffix = "-signing-secret"
	name := subscriptionName + suffix
	if len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(subscriptionName))
	return subscriptionName[:253-len(suffix)-9] + "-" + hex.EncodeToString(sum[:4]) + suffix
}
