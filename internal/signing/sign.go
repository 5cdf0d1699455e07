package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// SS3 signs body as the platform's X-SS3-Signature: hex HMAC-SHA256 keyed
// with the signing secret. During a rotation's overlap it carries one
// signature per secret, comma-separated, the current one first.
func SS3(body []byte, secrets ...string) string {
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		m := hmac.New(sha256.New, []byte(s))
		m.Write(body)
		sigs = append(sigs, hex.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, ",")
}

// VerifySS3 reports whether header holds a signature of body by secret.
func VerifySS3(secret string, body []byte, header string) bool {
	want := SS3(body, secret)
	for _, sig := range strings.Split(header, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(sig)), []byte(want)) {
			return true
		}
	}
	return false
}

// StandardWebhooks signs as the Standard Webhooks specification does: the
// value of webhook-signature, "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
// per secret, space-separated.
func StandardWebhooks(id string, timestamp time.Time, body []byte, secrets ...string) string {
	prefix := id + "." + strconv.FormatInt(timestamp.Unix(), 10) + "."
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		m := hmac.New(sha256.New, standardKey(s))
		m.Write([]byte(prefix))
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// VerifyStandardWebhooks checks webhook-signature against secret, refusing
// timestamps more than tolerance from now (replay protection).
func VerifyStandardWebhooks(secret, id, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-tolerance)) || at.After(now.Add(tolerance)) {
		return false
	}
	want := StandardWebhooks(id, at, body, secret)
	for _, sig := range strings.Fields(signature) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// standardKey is the HMAC key of a secret: the bytes after whsec_, base64
// decoded, as Standard Webhooks defines; an imported secret in another
// format is used as it is.
func standardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, SecretPrefix); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(secret)
}
