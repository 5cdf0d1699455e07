package credentials

import (
	"hash/crc32"
	"strings"
	"testing"
)

// FuzzParseAPIKey checks the credential formats against an independent
// reading of their definition: ParseAPIKey, ValidClientID and
// ValidClientSecret accept exactly the well-formed strings, a parsed key
// reassembles into the input, and one changed character in a well-formed key
// or client secret is always caught (CRC32 detects every error confined to
// 32 consecutive bits).
func FuzzParseAPIKey(f *testing.F) {
	f.Add("", "", uint(0), byte(0))
	f.Add("ss3_ak_0123456789abcdef_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg000000", "ss3_ak_0123456789abcdef", uint(30), byte('a'))
	f.Add(wellFormedKey("fuzzseed", "secretseed"), "ss3_oc_ZZZZZZZZZZZZZZZZ", uint(72), byte('0'))
	f.Add(wellFormedClientSecret("secretseed"), "ss3_ak_0123456789abcde!", uint(49), byte('_'))
	f.Add("ss3_ak_\x00\xff", "ss3_ak_é123456789abcde", uint(7), byte(0xff))
	f.Fuzz(func(t *testing.T, s, id string, pos uint, c byte) {
		// Arbitrary strings: accepted exactly when well formed.
		clientID, secret, ok := ParseAPIKey(s)
		if ok != isAPIKey(s) {
			t.Fatalf("ParseAPIKey(%q) = %v, the definition says %v", s, ok, !ok)
		}
		if ok {
			if clientID+"_"+secret != s || !ValidClientID(clientID) || len(secret) != secretChars+checksumChars {
				t.Fatalf("ParseAPIKey(%q) split it into %q and %q", s, clientID, secret)
			}
			if len(secret) > 72 {
				t.Fatal("bcrypt reads at most 72 bytes of the secret")
			}
		} else if clientID != "" || secret != "" {
			t.Fatalf("a refused key gave back parts %q, %q", clientID, secret)
		}
		for _, v := range []string{s, id} {
			if got := ValidClientID(v); got != isClientID(v) {
				t.Fatalf("ValidClientID(%q) = %v", v, got)
			}
			if got := ValidClientSecret(v); got != isClientSecret(v) {
				t.Fatalf("ValidClientSecret(%q) = %v", v, got)
			}
		}

		// Well-formed credentials built from the input (reproducible) and
		// freshly issued ones (what users hold) parse back to their parts,
		// and stop parsing when any one character changes.
		key, cs := wellFormedKey(id, s), wellFormedClientSecret(s)
		issued, err := NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		client, err := NewOAuthClient()
		if err != nil {
			t.Fatal(err)
		}
		if !ValidClientID(client.ClientID) || !strings.HasPrefix(client.ClientID, OAuthClientPrefix) || !ValidClientSecret(client.Secret) {
			t.Fatal("a new OAuth client is not well formed")
		}
		for _, k := range []struct{ key, id, secret string }{
			{key, key[:clientIDLen], key[clientIDLen+1:]},
			{issued.Presented, issued.ClientID, issued.Secret},
		} {
			gotID, gotSecret, ok := ParseAPIKey(k.key)
			if !ok || gotID != k.id || gotSecret != k.secret {
				// Only lengths: the key is a credential.
				t.Fatalf("a well-formed key (%d chars) did not parse back to its client id and secret", len(k.key))
			}
			if changed, ok := changeOne(k.key, pos, c); ok {
				if _, _, ok := ParseAPIKey(changed); ok {
					t.Fatalf("a key with character %d changed still parses", int(pos%uint(len(k.key))))
				}
			}
		}
		for _, secret := range []string{cs, client.Secret} {
			if !ValidClientSecret(secret) {
				t.Fatal("a well-formed client secret is refused")
			}
			if changed, ok := changeOne(secret, pos, c); ok && ValidClientSecret(changed) {
				t.Fatalf("a client secret with character %d changed is still valid", int(pos%uint(len(secret))))
			}
		}
	})
}

// changeOne replaces the character at pos (modulo the length) with c, or
// with the next base62 character when c is what is there already.
func changeOne(s string, pos uint, c byte) (string, bool) {
	if s == "" {
		return "", false
	}
	b := []byte(s)
	i := int(pos % uint(len(b)))
	if b[i] == c {
		c = testAlphabet[(strings.IndexByte(testAlphabet, c)+1)%len(testAlphabet)]
	}
	b[i] = c
	return string(b), true
}

// The definition, written out again so the fuzzer compares two readings of
// it rather than the code with itself.

const testAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func testChecksum(s string) string {
	n := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		out[i] = testAlphabet[n%62]
		n /= 62
	}
	return string(out)
}

func base62Only(s string) bool {
	return strings.Trim(s, testAlphabet) == ""
}

// isAPIKey: "ss3_ak_", 16 base62, "_", 43 base62, and the base62 CRC32 of
// everything before it.
func isAPIKey(s string) bool {
	if len(s) != 7+16+1+43+6 || s[:7] != "ss3_ak_" || s[23] != '_' {
		return false
	}
	return base62Only(s[7:23]) && base62Only(s[24:]) && testChecksum(s[:67]) == s[67:]
}

func isClientID(s string) bool {
	return len(s) == 7+16 && (s[:7] == "ss3_ak_" || s[:7] == "ss3_oc_") && base62Only(s[7:])
}

func isClientSecret(s string) bool {
	return len(s) == 7+43+6 && s[:7] == "ss3_cs_" && base62Only(s[7:]) && testChecksum(s[:50]) == s[50:]
}

// toBase62 maps any input onto n base62 characters, deterministically.
func toBase62(s string, n int) string {
	out := make([]byte, n)
	for i := range out {
		var c byte = byte(i)
		if len(s) > 0 {
			c += s[i%len(s)]
		}
		out[i] = testAlphabet[int(c)%len(testAlphabet)]
	}
	return string(out)
}

func wellFormedKey(id, secret string) string {
	body := "ss3_ak_" + toBase62(id, 16) + "_" + toBase62(secret, 43)
	return body + testChecksum(body)
}

func wellFormedClientSecret(secret string) string {
	body := "ss3_cs_" + toBase62(secret, 43)
	return body + testChecksum(body)
}
