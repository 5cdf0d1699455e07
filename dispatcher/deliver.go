package dispatcher

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/ss3dev/integration-operator/internal/egress"
	"github.com/ss3dev/integration-operator/internal/signing"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// Stage 4, deliver: one HTTP POST of the event's payload, signed, with the
// subscription's timeout; redirects are not followed, and the destination's
// address is checked when the connection is made.

// Headers of the platform's contract.
const (
	HeaderEvent     = signing.HeaderEvent
	HeaderDelivery  = signing.HeaderDelivery
	HeaderSignature = signing.HeaderSignature
)

// attemptResult is what one attempt found, before the retry policy judges it.
type attemptResult struct {
	status int // 0 when there was no answer
	// body is the answer's first bytes as sent; the store makes them
	// storable.
	body       string
	retryAfter time.Duration
	err        error
	// outage: our own dependency failed; the endpoint is not to blame.
	outage bool
	// secretMissing: the outage is a signing secret Vault does not have.
	secretMissing bool
	// destinationDown: the outage is a queue destination out of reach
	// (store.DestinationUnreachable, store.DestinationCredentialsMissing).
	destinationDown string
	// waitFor: not attempted now (endpoint protection, inactive
	// subscription); try again after this, with no attempt spent.
	waitFor time.Duration
	// sent: a queue destination took the message (there is no HTTP status).
	sent bool
	// started and took: when the attempt began and how long it lasted.
	started time.Time
	took    time.Duration
}

// newDialer connects only where egress allows (webhooks and queue brokers alike).
func newDialer(allowed []netip.Prefix) *net.Dialer {
	return &net.Dialer{
		Timeout: 10 * time.Second,
		Control: egress.Control(allowed),
	}
}

// newHTTPClient verifies servers' certificates against roots (nil: the
// system's CAs).
func newHTTPClient(allowed []netip.Prefix, roots *x509.CertPool) *http.Client {
	dialer := newDialer(allowed)
	transport := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if roots != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// attempt makes one delivery attempt.
func (d *Dispatcher) attempt(ctx context.Context, del store.Delivery) attemptResult {
	secrets, err := d.secrets.get(ctx, del.SubscriptionID)
	if err != nil {
		return attemptResult{err: fmt.Errorf("signing secret unavailable: %w", err), outage: true,
			secretMissing: errors.Is(err, vault.ErrNotFound) || errors.Is(err, errEmptySecret)}
	}
	timeout := del.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if del.Destination != nil {
		return d.attemptQueue(ctx, del, secrets)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, del.TargetURL, bytes.NewReader(del.Payload))
	if err != nil {
		return attemptResult{err: fmt.Errorf("build request: %w", err)}
	}
	h := req.Header
	signing.SetWebhookHeaders(h, del.ID.String(), del.EventType, del.Payload, del.SignatureScheme == store.SignatureStandardWebhooks, time.Now(), secrets...)
	d.injectTrace(ctx, propagation.HeaderCarrier(h))
	start := time.Now()
	resp, err := d.client.Do(req)
	d.metrics.Latency.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, egress.ErrRefused) {
			return attemptResult{err: egress.ErrRefused}
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return attemptResult{err: fmt.Errorf("no answer within %v", timeout)}
		}
		return attemptResult{err: fmt.Errorf("request failed: %w", unwrapURLError(err))}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(d.cfg.MaxResponseBody)))
	// Drain a little more so the connection can be reused; never much.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return attemptResult{status: resp.StatusCode, body: string(body), retryAfter: retryAfter(resp.Header.Get("Retry-After"))}
}

func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return time.Until(t)
	}
	return 0
}
