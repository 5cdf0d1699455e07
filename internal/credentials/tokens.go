package credentials

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// Tokens issues and verifies the short-lived bearer tokens of the OAuth
// client credentials grant: HS256 JWTs signed with a key every replica shares.
type Tokens struct {
	key    []byte
	ttl    time.Duration
	issuer string
	now    func() time.Time
}

// tokenAudience names what our tokens are for, so a JWT minted for
// something else with the same key is not accepted.
const tokenAudience = "ss3-platform-api"

// MinTokenKeyLength is the shortest signing key accepted (HS256 wants 256 bits).
const MinTokenKeyLength = 32

// NewTokens returns an issuer; key must be at least 32 bytes.
func NewTokens(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < MinTokenKeyLength {
		return nil, fmt.Errorf("token signing key must be at least %d bytes", MinTokenKeyLength)
	}
	if ttl <= 0 {
		ttl = 15 * time.Minute
	}
	return &Tokens{key: key, ttl: ttl, issuer: "integration-operator", now: time.Now}, nil
}

type tokenClaims struct {
	jwt.RegisteredClaims
	Scope   string `json:"scope"`
	StoreID string `json:"store_id"`
	// SecretIssued is the issue time (Unix microseconds) of the client's
	// secret when the token was minted; after a rotation it no longer matches.
	SecretIssued int64 `json:"secret_iat,omitempty"`
	// Previous says the token was minted with the previous secret, in its
	// grace period, and lives no longer than that.
	Previous bool `json:"secret_prev,omitempty"`
}

// Issue mints a token for p limited to scopes.
func (t *Tokens) Issue(p Principal, scopes []string) (string, time.Duration, error) {
	now := t.now()
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   p.ClientID,
			Audience:  jwt.ClaimStrings{tokenAudience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			ID:        uuid.NewString(),
		},
		Scope:        strings.Join(scopes, " "),
		StoreID:      p.StoreID,
		SecretIssued: p.IssuedAt.UnixMicro(),
		Previous:     p.ViaPreviousSecret,
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
	if err != nil {
		return "", 0, fmt.Errorf("sign token: %w", err)
	}
	return signed, t.ttl, nil
}

// verified is what a valid token says.
type verified struct {
	clientID     string
	scopes       []string
	issuedAt     time.Time
	secretIssued int64
	previous     bool
}

// Verify checks signature, algorithm, issuer, audience and expiry.
func (t *Tokens) Verify(token string) (verified, error) {
	var claims tokenClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(t.issuer), jwt.WithAudience(tokenAudience), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return verified{}, err
	}
	if !ValidClientID(claims.Subject) {
		return verified{}, errors.New("token subject is not a client id")
	}
	if claims.IssuedAt == nil {
		return verified{}, errors.New("token has no issue time")
	}
	return verified{clientID: claims.Subject, scopes: strings.Fields(claims.Scope), issuedAt: claims.IssuedAt.Time,
		secretIssued: claims.SecretIssued, previous: claims.Previous}, nil
}
