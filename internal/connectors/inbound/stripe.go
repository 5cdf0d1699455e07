package inbound

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// StripeTolerance is Stripe's default window for a signature's timestamp.
const StripeTolerance = 5 * time.Minute

// Errors a Stripe signature check can end with; none reveals the secret.
var (
	ErrStripeHeader    = errors.New("stripe: malformed Stripe-Signature header")
	ErrStripeTimestamp = errors.New("stripe: signature timestamp outside the tolerance window")
	ErrStripeSignature = errors.New("stripe: no v1 signature matches")
)

// VerifyStripe checks a Stripe-Signature header ("t=<unix>,v1=<hex>,...")
// against the raw body with the endpoint's signing secret: HMAC-SHA256 of
// "<t>.<body>", any v1 entry matching, t within tolerance of now.
func VerifyStripe(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	var ts int64
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrStripeHeader
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return ErrStripeHeader
			}
			ts = n
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil {
				return ErrStripeHeader
			}
			sigs = append(sigs, sig)
		}
	}
	if ts == 0 || len(sigs) == 0 {
		return ErrStripeHeader
	}
	at := time.Unix(ts, 0)
	if at.Before(now.Add(-tolerance)) || at.After(now.Add(tolerance)) {
		return ErrStripeTimestamp
	}
	want := stripeMAC(ts, body, secret)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return ErrStripeSignature
}

// SignStripe makes a Stripe-Signature header as Stripe does (for tests and
// local servers that play Stripe).
func SignStripe(body []byte, secret string, at time.Time) string {
	ts := at.Unix()
	return "t=" + strconv.FormatInt(ts, 10) + ",v1=" + hex.EncodeToString(stripeMAC(ts, body, secret))
}

func stripeMAC(ts int64, body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}
