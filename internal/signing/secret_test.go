package signing

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestGenerateSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := GenerateSecret()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, SecretPrefix) {
			t.Fatalf("missing prefix: %d chars", len(s))
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, SecretPrefix))
		if err != nil || len(raw) != 32 {
			t.Fatalf("want base64 of 32 bytes, got %d bytes, %v", len(raw), err)
		}
		if seen[s] {
			t.Fatal("generated the same secret twice")
		}
		seen[s] = true
	}
}
