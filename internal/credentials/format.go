// Package credentials issues and validates API credentials: API keys and
// OAuth 2.0 clients. It holds the credential formats, the validator the
// credentials API serves from memory (bcrypt at most once per credential per
// cache lifetime, invalidated across replicas by Postgres notifications),
// short-lived OAuth access tokens, and the HTTP API the gateway calls.
package credentials

import (
	"crypto/rand"
	"fmt"
	"hash/crc32"
	"strings"
)

// Prefixes make leaked credentials recognisable to people and secret scanners.
const (
	APIKeyClientPrefix      = "ss3_ak_"
	OAuthClientPrefix       = "ss3_oc_"
	OAuthClientSecretPrefix = "ss3_cs_"
)

const (
	alphabet      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	idChars       = 16 // ~95 bits: unique, not secret
	secretChars   = 43 // ~256 bits, the 32 random bytes of the design
	checksumChars = 6  // CRC32 in base62

	clientIDLen     = len(APIKeyClientPrefix) + idChars
	apiKeySecretLen = secretChars + checksumChars
	// APIKeyLen is the length of a whole API key: client id, "_", secret and checksum.
	APIKeyLen = clientIDLen + 1 + apiKeySecretLen
	// ClientSecretLen is the length of an OAuth client secret.
	ClientSecretLen = len(OAuthClientSecretPrefix) + secretChars + checksumChars
)

// Issued is a new credential: what the holder presents. Secret is what
// bcrypt hashes; for an API key, Presented (the whole key) contains it.
type Issued struct {
	ClientID  string
	Secret    string
	Presented string
}

// NewAPIKey issues an API key: `ss3_ak_<id>_<secret><crc>`.
func NewAPIKey() (Issued, error) {
	id, err := randomBase62(idChars)
	if err != nil {
		return Issued{}, err
	}
	clientID := APIKeyClientPrefix + id
	return newAPIKeySecret(clientID)
}

// RotateAPIKey issues a new secret for an existing API key client id.
func RotateAPIKey(clientID string) (Issued, error) { return newAPIKeySecret(clientID) }

func newAPIKeySecret(clientID string) (Issued, error) {
	random, err := randomBase62(secretChars)
	if err != nil {
		return Issued{}, err
	}
	body := clientID + "_" + random
	key := body + checksum(body)
	return Issued{ClientID: clientID, Secret: key[clientIDLen+1:], Presented: key}, nil
}

// NewOAuthClient issues an OAuth client id and secret.
func NewOAuthClient() (Issued, error) {
	id, err := randomBase62(idChars)
	if err != nil {
		return Issued{}, err
	}
	return RotateOAuthClient(OAuthClientPrefix + id)
}

// RotateOAuthClient issues a new secret for an existing OAuth client id.
func RotateOAuthClient(clientID string) (Issued, error) {
	random, err := randomBase62(secretChars)
	if err != nil {
		return Issued{}, err
	}
	body := OAuthClientSecretPrefix + random
	secret := body + checksum(body)
	return Issued{ClientID: clientID, Secret: secret, Presented: secret}, nil
}

// ParseAPIKey splits a well-formed API key into client id and secret. It
// refuses anything of the wrong shape or checksum without touching storage.
func ParseAPIKey(key string) (clientID, secret string, ok bool) {
	if len(key) != APIKeyLen || !strings.HasPrefix(key, APIKeyClientPrefix) || key[clientIDLen] != '_' {
		return "", "", false
	}
	if !isBase62(key[len(APIKeyClientPrefix):clientIDLen]) || !isBase62(key[clientIDLen+1:]) {
		return "", "", false
	}
	body, sum := key[:len(key)-checksumChars], key[len(key)-checksumChars:]
	if checksum(body) != sum {
		return "", "", false
	}
	return key[:clientIDLen], key[clientIDLen+1:], true
}

// ValidClientID reports whether id has the shape of one of our client ids.
func ValidClientID(id string) bool {
	return len(id) == clientIDLen && (strings.HasPrefix(id, APIKeyClientPrefix) || strings.HasPrefix(id, OAuthClientPrefix)) &&
		isBase62(id[len(APIKeyClientPrefix):])
}

// ValidClientSecret reports whether s has the shape and checksum of an OAuth client secret.
func ValidClientSecret(s string) bool {
	if len(s) != ClientSecretLen || !strings.HasPrefix(s, OAuthClientSecretPrefix) || !isBase62(s[len(OAuthClientSecretPrefix):]) {
		return false
	}
	return checksum(s[:len(s)-checksumChars]) == s[len(s)-checksumChars:]
}

func checksum(s string) string {
	n := crc32.ChecksumIEEE([]byte(s))
	var b [checksumChars]byte
	for i := checksumChars - 1; i >= 0; i-- {
		b[i] = alphabet[n%62]
		n /= 62
	}
	return string(b[:])
}

func isBase62(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// randomBase62 draws n uniform base62 characters from crypto/rand, by
// rejection so no character is likelier than another.
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("random: %w", err)
		}
		for _, b := range buf {
			if b < 248 && len(out) < n { // 248 = 4*62
				out = append(out, alphabet[b%62])
			}
		}
	}
	return string(out), nil
}
