package credentials

import (
	"strings"
	"testing"
)

func TestAPIKeyRoundTrip(t *testing.T) {
	k, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Presented, "ss3_ak_") || len(k.Presented) != APIKeyLen || !ValidClientID(k.ClientID) {
		t.Fatalf("bad shape: %d chars", len(k.Presented))
	}
	id, secret, ok := ParseAPIKey(k.Presented)
	if !ok || id != k.ClientID || secret != k.Secret {
		t.Fatal("parse does not give back the client id and secret")
	}
	if len(k.Secret) > 72 {
		t.Fatal("bcrypt reads at most 72 bytes")
	}
	// One changed character breaks the checksum.
	b := []byte(k.Presented)
	if b[30] == 'a' {
		b[30] = 'b'
	} else {
		b[30] = 'a'
	}
	if _, _, ok := ParseAPIKey(string(b)); ok {
		t.Fatal("a corrupted key parsed")
	}
	for _, bad := range []string{"", "ss3_ak_", strings.Repeat("x", APIKeyLen), k.Presented + "x", strings.Replace(k.Presented, "_", "-", 3)} {
		if _, _, ok := ParseAPIKey(bad); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
	r, err := RotateAPIKey(k.ClientID)
	if err != nil || r.ClientID != k.ClientID || r.Secret == k.Secret {
		t.Fatal("rotation keeps the client id and changes the secret")
	}
}

func TestOAuthClientFormat(t *testing.T) {
	c, err := NewOAuthClient()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ClientID, "ss3_oc_") || !ValidClientID(c.ClientID) || !ValidClientSecret(c.Secret) {
		t.Fatal("bad shape")
	}
	if ValidClientSecret(c.Secret[:len(c.Secret)-1]+"0") && ValidClientSecret(c.Secret[:len(c.Secret)-1]+"1") {
		t.Fatal("checksum not checked")
	}
	if ValidClientID("ss3_xx_0123456789abcdef") || ValidClientID("ss3_oc_0123456789abcde!") {
		t.Fatal("bad client ids accepted")
	}
}

func TestRandomBase62IsUniform(t *testing.T) {
	counts := map[byte]int{}
	s, err := randomBase62(62 * 2000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	if len(counts) != 62 {
		t.Fatalf("%d distinct characters", len(counts))
	}
	for c, n := range counts {
		if n < 1500 || n > 2500 {
			t.Fatalf("character %q drawn %d times of an expected 2000", c, n)
		}
	}
}
