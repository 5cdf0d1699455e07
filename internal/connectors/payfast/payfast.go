// Package payfast is the PayFast connector: it receives PayFast's instant
// transaction notifications (ITNs), checks them the four ways PayFast asks
// (signature with the passphrase, merchant id, source address, and
// confirmation by PayFast's validate endpoint), and turns each into a
// platform event.
package payfast

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"encoding/json"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/inbound"
)

// Type is the connector type served here.
const Type = "payfast"

// Registration describes the adapter: the merchant id as api-key and the
// account's passphrase as api-secret.
func Registration() connectors.Registration {
	return connectors.Registration{Type: Type, New: New, Credentials: []string{connectors.CredentialAPIKey, connectors.CredentialAPISecret}}
}

type settings struct {
	// Endpoint is PayFast's host (https://sandbox.payfast.co.za for tests).
	Endpoint string `json:"endpoint"`
	// ConfirmWithPayFast posts each ITN back to /eng/query/validate.
	ConfirmWithPayFast *bool `json:"confirmWithPayFast"`
	// AllowedSourceNetworks, when set, are the only addresses ITNs may
	// come from (PayFast publishes its ranges).
	AllowedSourceNetworks []string `json:"allowedSourceNetworks"`
}

type adapter struct {
	connectors.ReceiveOnly
	cfg      connectors.Config
	validate string
	confirm  bool
	sources  []netip.Prefix
}

// New checks the settings and opens the adapter for one ConnectorConfig.
func New(cfg connectors.Config) (connectors.Adapter, error) {
	var s settings
	if err := connectors.DecodeSettings(cfg.Settings, &s); err != nil {
		return nil, err
	}
	base, err := connectors.BaseURL("endpoint", s.Endpoint, "https://www.payfast.co.za")
	if err != nil {
		return nil, err
	}
	a := &adapter{cfg: cfg, validate: base.JoinPath("eng/query/validate").String(), confirm: s.ConfirmWithPayFast == nil || *s.ConfirmWithPayFast}
	for _, n := range s.AllowedSourceNetworks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, &connectors.SettingsError{Setting: "allowedSourceNetworks", Problem: connectors.QuoteSetting(n) + " is not a CIDR range"}
		}
		a.sources = append(a.sources, p)
	}
	return a, nil
}

func (a *adapter) Type() string { return Type }

// Receive checks an ITN and makes it payfast.payment.<status>, keyed by
// PayFast's payment id and status (one payment notifies once per status).
func (a *adapter) Receive(ctx context.Context, r connectors.InboundRequest) (connectors.InboundEvent, error) {
	creds, err := a.cfg.Credentials(ctx)
	if err != nil {
		return connectors.InboundEvent{}, err
	}
	if len(a.sources) > 0 && !a.fromPayFast(r.RemoteIP) {
		return connectors.InboundEvent{}, connectors.Reject("source address is not in allowedSourceNetworks")
	}
	fields, err := inbound.ParsePayFastForm(string(r.Body))
	if err != nil {
		return connectors.InboundEvent{}, connectors.Reject("body is not a form")
	}
	if err := inbound.VerifyPayFast(fields, creds.APISecret); err != nil {
		return connectors.InboundEvent{}, connectors.Reject("%v", err)
	}
	values := map[string]string{}
	for _, f := range fields {
		values[f.Name] = f.Value
	}
	if values["merchant_id"] != creds.APIKey {
		return connectors.InboundEvent{}, connectors.Reject("merchant_id is not this connector's merchant")
	}
	if values["pf_payment_id"] == "" || values["payment_status"] == "" {
		return connectors.InboundEvent{}, connectors.Reject("ITN has no pf_payment_id or payment_status")
	}
	if a.confirm {
		if err := a.confirmWithPayFast(ctx, fields); err != nil {
			return connectors.InboundEvent{}, err
		}
	}
	delete(values, "signature")
	status := strings.ToLower(values["payment_status"])
	data, err := json.Marshal(map[string]any{"provider": Type, "configId": a.cfg.ID.String(), "paymentId": values["pf_payment_id"],
		"merchantPaymentId": values["m_payment_id"], "paymentStatus": values["payment_status"], "amountGross": values["amount_gross"],
		"fields": values})
	if err != nil {
		return connectors.InboundEvent{}, err
	}
	return connectors.InboundEvent{ProviderID: values["pf_payment_id"] + ":" + values["payment_status"],
		Type: "payfast.payment." + status, Data: data}, nil
}

func (a *adapter) fromPayFast(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	for _, p := range a.sources {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// confirmWithPayFast posts the ITN's fields back; PayFast answers VALID for
// a notification it sent. A failed call is an error to retry, not a
// rejection: PayFast sends the ITN again when we do not answer 200.
func (a *adapter) confirmWithPayFast(ctx context.Context, fields []inbound.Field) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.validate, strings.NewReader(inbound.PayFastParamString(fields)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("confirming the ITN with PayFast: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("confirming the ITN with PayFast: answered %d", resp.StatusCode)
	}
	if strings.TrimSpace(string(body)) != "VALID" {
		return connectors.Reject("PayFast did not confirm the ITN (answered %q)", strings.TrimSpace(string(body)))
	}
	return nil
}
