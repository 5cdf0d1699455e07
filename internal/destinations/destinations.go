// Package destinations holds what every queue destination (SQS, STOMP)
// shares: the message a delivery becomes, how a send's failure is told
// apart (our outage, refused credentials, or a failed attempt), and how
// credentials are named in Vault and masked for display. Each destination
// is a package of its own beside this one.
package destinations

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Fields of the Vault secret webhook/<subscriptionId>/destination.
const (
	FieldAccessKeyID     = "access-key-id"
	FieldSecretAccessKey = "secret-access-key"
	FieldLogin           = "login"
	FieldPasscode        = "passcode"
)

// Message attribute (SQS) and header (STOMP) names: the same as the
// webhook's HTTP headers, plus the event id, so consumers verify and
// deduplicate alike.
const (
	AttrEvent     = "X-SS3-Event"
	AttrEventID   = "X-SS3-Event-Id"
	AttrDelivery  = "X-SS3-Delivery"
	AttrSignature = "X-SS3-Signature"
)

// Message is one delivery as a queue message: the event's payload, byte
// for byte, and what identifies and signs it.
type Message struct {
	DeliveryID string
	EventID    string
	EventType  string
	StoreID    string
	Body       []byte
	// Signature is the X-SS3-Signature value over Body.
	Signature string
}

// ErrUnreachable wraps a failure to reach the broker at all: our outage,
// retried without spending an attempt.
var ErrUnreachable = errors.New("the broker could not be reached")

// ErrTLSVerification wraps a certificate the destination presented that
// does not verify (a CA neither the system nor the dispatcher's
// --destination-ca-file trusts, another name, expired). It comes wrapped
// in ErrUnreachable: no attempt would fare better until the certificate
// or the CA bundle is fixed, so it is waited out like a broker that is
// down, and shows on the subscription's status, instead of spending the
// attempts of deliveries that are not at fault.
var ErrTLSVerification = errors.New("TLS verification of the destination's certificate failed")

// TLSUnverified returns err, a failed TLS handshake or a request that
// made one, as ErrUnreachable and ErrTLSVerification if the destination's
// certificate did not verify; nil if that is not why err failed. The
// message is the verifier's (names and CAs, never credentials).
func TLSUnverified(err error) error {
	var v *tls.CertificateVerificationError
	if !errors.As(err, &v) {
		return nil
	}
	var unknownCA x509.UnknownAuthorityError
	if errors.As(v.Err, &unknownCA) {
		return fmt.Errorf("%w: %w: %v (a private CA is trusted with the dispatcher's --destination-ca-file)", ErrUnreachable, ErrTLSVerification, v.Err)
	}
	return fmt.Errorf("%w: %w: %v", ErrUnreachable, ErrTLSVerification, v.Err)
}

// ErrCredentialsRejected wraps the broker's refusal of our credentials:
// an attempt that failed, reported on the subscription's status.
var ErrCredentialsRejected = errors.New("the destination refused the credentials")

// CredentialsRejectedPrefix starts the recorded error of an attempt whose
// credentials were refused; the manager's status report looks for it.
const CredentialsRejectedPrefix = "the destination refused the credentials"

// Mask shows a credential as its last four characters, the rest hidden,
// as the platform does.
func Mask(s string) string {
	if len(s) <= 4 {
		return "****"
	}
	return strings.Repeat("*", 4) + s[len(s)-4:]
}
