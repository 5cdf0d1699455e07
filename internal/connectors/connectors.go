// Package connectors defines what a marketplace or payment-provider adapter
// is (the Adapter interface, its Config and errors) and the HTTP and OAuth
// plumbing adapters share. The adapters live in sub-packages, one per
// connector type, and are listed in package registry.
package connectors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Event is a platform event routed to a connector.
type Event struct {
	ID      uuid.UUID
	Type    string
	StoreID string
	Time    time.Time
	Data    json.RawMessage
}

// Credentials are a connector's secrets, read from Vault
// (connector/{config_id}/api-key, /api-secret, /refresh-token).
type Credentials struct {
	APIKey       string
	APISecret    string
	RefreshToken string
}

// Credential names, as the Vault leaves under connector/{config_id}/.
const (
	CredentialAPIKey       = "api-key"
	CredentialAPISecret    = "api-secret"
	CredentialRefreshToken = "refresh-token"
)

// Config is what an adapter is opened with for one ConnectorConfig.
type Config struct {
	ID      uuid.UUID
	StoreID string
	// Settings are the ConnectorConfig's non-sensitive settings, as JSON.
	Settings json.RawMessage
	// Credentials reads the connector's secrets when a call needs them
	// (nil when the adapter is opened only to check its settings).
	Credentials func(context.Context) (Credentials, error)
	// HTTPClient makes the adapter's calls.
	HTTPClient *http.Client
}

// Adapter connects one configured store to one marketplace or provider.
// What it does not support it says so: Handles is empty, or Poll returns
// ErrNoPoll; inbound providers also implement Receiver.
type Adapter interface {
	// Type is the connector type, as in ConnectorConfig.spec.connectorType.
	Type() string
	// Handles lists the platform event types HandleEvents acts on.
	Handles() []string
	// HandleEvents pushes events to the marketplace and returns one result
	// per event, in order: nil when done, a Permanent error when retrying
	// cannot help, any other error to retry with backoff.
	HandleEvents(ctx context.Context, events []Event) []error
	// Poll pulls what changed on the marketplace since cursor (empty on
	// the first run) and returns the platform events it makes, and the
	// cursor to pass next time (see PollResult.More).
	Poll(ctx context.Context, cursor string) (PollResult, error)
}

// Receiver is an adapter whose provider sends us webhooks.
type Receiver interface {
	Adapter
	// Receive verifies and parses one webhook as received. A *Rejection
	// error means the request is not genuine (or not meant for us).
	Receive(ctx context.Context, r InboundRequest) (InboundEvent, error)
}

// ReceiveOnly gives a Receiver the Adapter methods it has no use for: it
// takes no platform events and does not poll.
type ReceiveOnly struct{}

// Handles lists no event types.
func (ReceiveOnly) Handles() []string { return nil }

// HandleEvents is never called for a receiver (it handles no types).
func (ReceiveOnly) HandleEvents(_ context.Context, events []Event) []error {
	errs := make([]error, len(events))
	for i := range errs {
		errs[i] = Permanent(errors.New("this connector type only receives webhooks"))
	}
	return errs
}

// Poll says there is nothing to poll.
func (ReceiveOnly) Poll(context.Context, string) (PollResult, error) { return PollResult{}, ErrNoPoll }

// PollResult is what one poll run found.
type PollResult struct {
	// EntityType names what was pulled ("order").
	EntityType string
	// Events are published to the platform's events topic.
	Events []Event
	// Cursor is handed to the next poll.
	Cursor string
	// More says the marketplace has more waiting (a backlog is pulled a
	// page per call): the caller keeps Cursor, then calls Poll again with
	// it, so a failure later loses none of the pages already pulled.
	More bool
	// Wait, with More, is how long until the next call can be made (the
	// marketplace's rate); the caller calls no sooner.
	Wait time.Duration
}

// InboundRequest is a provider's webhook as it arrived.
type InboundRequest struct {
	Header   http.Header
	Body     []byte
	RemoteIP string
}

// InboundEvent is a verified provider webhook.
type InboundEvent struct {
	// ProviderID identifies the event at the provider; it is the dedupe key.
	ProviderID string
	// Type is the platform event type published ("stripe.payment_intent.succeeded").
	Type string
	// Data is the payload published, as JSON.
	Data json.RawMessage
}

// ErrNoPoll is returned by Poll when the adapter has nothing to pull.
var ErrNoPoll = errors.New("this connector type does not poll")

// SettingsError says which setting is wrong and why; the manager shows it
// on the ConnectorConfig's status.
type SettingsError struct{ Setting, Problem string }

// Error cuts Setting short: for an unknown key it is whatever the user wrote.
func (e *SettingsError) Error() string {
	return fmt.Sprintf("settings.%s: %s", Clip(e.Setting, maxEcho), e.Problem)
}

// Rejection is an inbound webhook that failed verification; Reason is safe
// to show (it never contains secrets or signatures).
type Rejection struct{ Reason string }

func (e *Rejection) Error() string { return "rejected: " + e.Reason }

// Reject makes a Rejection.
func Reject(format string, args ...any) error {
	return &Rejection{Reason: fmt.Sprintf(format, args...)}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one retrying cannot fix (a bad payload, a 4xx).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type deferredError struct{ err error }

func (e deferredError) Error() string { return e.err.Error() }
func (e deferredError) Unwrap() error { return e.err }

// Deferred marks err as our own holding back (a rate limit's turn not yet
// come): the event was not sent, so the attempt is not counted.
func Deferred(err error) error {
	if err == nil {
		return nil
	}
	return deferredError{err}
}

// IsDeferred reports whether err was marked Deferred.
func IsDeferred(err error) bool {
	var d deferredError
	return errors.As(err, &d)
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Each applies handle to every event, for adapters whose API takes one
// record per call.
func Each(ctx context.Context, events []Event, handle func(context.Context, Event) error) []error {
	errs := make([]error, len(events))
	for i, e := range events {
		errs[i] = handle(ctx, e)
	}
	return errs
}

// Registration is an adapter's entry in the registry.
type Registration struct {
	Type string
	// New checks settings and opens the adapter for one ConnectorConfig; a
	// *SettingsError says what is wrong.
	New func(Config) (Adapter, error)
	// Credentials lists the credentials (CredentialAPIKey, ...) the
	// adapter needs in the referenced Secret.
	Credentials []string
	// Polls says the adapter pulls from the marketplace on the config's
	// poll interval.
	Polls bool
}
