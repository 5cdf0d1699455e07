// Package stripe is the Stripe connector: it receives Stripe's webhooks,
// verifies their Stripe-Signature with the endpoint's signing secret, and
// turns each event into a platform event.
package stripe

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
)

// Type is the connector type served here.
const Type = "stripe"

// Registration describes the adapter: the webhook endpoint's signing secret
// (whsec_...) as api-secret.
func Registration() connectors.Registration {
	return connectors.Registration{Type: Type, New: New, Credentials: []string{connectors.CredentialAPISecret}}
}

type settings struct {
	// ToleranceSeconds is how old a signature's timestamp may be.
	ToleranceSeconds int `json:"toleranceSeconds"`
}

type adapter struct {
	connectors.ReceiveOnly
	cfg       connectors.Config
	tolerance time.Duration
}

// New checks the settings and opens the adapter for one ConnectorConfig.
func New(cfg connectors.Config) (connectors.Adapter, error) {
	s := settings{ToleranceSeconds: int(inbound.StripeTolerance / time.Second)}
	if err := connectors.DecodeSettings(cfg.Settings, &s); err != nil {
		return nil, err
	}
	if s.ToleranceSeconds < 1 || s.ToleranceSeconds > 3600 {
		return nil, &connectors.SettingsError{Setting: "toleranceSeconds", Problem: "must be between 1 and 3600"}
	}
	return &adapter{cfg: cfg, tolerance: time.Duration(s.ToleranceSeconds) * time.Second}, nil
}

func (a *adapter) Type() string { return Type }

type event struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Type     string `json:"type"`
	Created  int64  `json:"created"`
	Livemode bool   `json:"livemode"`
}

// Receive verifies the Stripe-Signature header over the raw body and
// makes the event stripe.<type>, keyed by Stripe's event id.
func (a *adapter) Receive(ctx context.Context, r connectors.InboundRequest) (connectors.InboundEvent, error) {
	creds, err := a.cfg.Credentials(ctx)
	if err != nil {
		return connectors.InboundEvent{}, err
	}
	header := r.Header.Get("Stripe-Signature")
	if header == "" {
		return connectors.InboundEvent{}, connectors.Reject("no Stripe-Signature header")
	}
	if err := inbound.VerifyStripe(header, r.Body, creds.APISecret, time.Now(), a.tolerance); err != nil {
		return connectors.InboundEvent{}, connectors.Reject("%v", err)
	}
	var e event
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Object != "event" || !strings.HasPrefix(e.ID, "evt_") || e.Type == "" {
		return connectors.InboundEvent{}, connectors.Reject("signed body is not a Stripe event")
	}
	data, err := json.Marshal(map[string]any{"provider": Type, "configId": a.cfg.ID.String(), "providerEventId": e.ID,
		"livemode": e.Livemode, "created": e.Created, "event": json.RawMessage(r.Body)})
	if err != nil {
		return connectors.InboundEvent{}, err
	}
	return connectors.InboundEvent{ProviderID: e.ID, Type: "stripe." + e.Type, Data: data}, nil
}
