// Package googleshopping is the Google Shopping connector: products become
// Merchant API product inputs, inserted when the event carries the whole
// product and patched otherwise, with an access token obtained by a
// service-account JWT assertion.
package googleshopping

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/ss3dev/integration-operator/internal/connectors"
)

// Type is the connector type served here.
const Type = "google-shopping"

// Scope is the Merchant API's OAuth scope.
const Scope = "https://www.googleapis.com/auth/content"

// Registration describes the adapter: the service account's client email
// as api-key and its PEM private key as api-secret.
func Registration() connectors.Registration {
	return connectors.Registration{Type: Type, New: New, Credentials: []string{connectors.CredentialAPIKey, connectors.CredentialAPISecret}}
}

type settings struct {
	AccountID       string `json:"accountId"`
	DataSourceID    string `json:"dataSourceId"`
	ContentLanguage string `json:"contentLanguage"`
	FeedLabel       string `json:"feedLabel"`
	Endpoint        string `json:"endpoint"`
	// AuthEndpoint serves /token (the JWT's audience).
	AuthEndpoint string `json:"authEndpoint"`
	// KeyID is the service-account key's id, sent as the JWT's kid.
	KeyID string `json:"keyId"`
}

type adapter struct {
	cfg      connectors.Config
	s        settings
	tokenURL string
	api      *connectors.API
	tokens   connectors.TokenCache
}

// New checks the settings and opens the adapter for one ConnectorConfig.
func New(cfg connectors.Config) (connectors.Adapter, error) {
	a := &adapter{cfg: cfg, s: settings{ContentLanguage: "en", FeedLabel: "US"}}
	if err := connectors.DecodeSettings(cfg.Settings, &a.s); err != nil {
		return nil, err
	}
	if err := errors.Join(connectors.Require("accountId", a.s.AccountID), connectors.Require("dataSourceId", a.s.DataSourceID)); err != nil {
		return nil, err
	}
	if _, err := strconv.ParseUint(a.s.AccountID, 10, 64); err != nil {
		return nil, &connectors.SettingsError{Setting: "accountId", Problem: "must be the numeric Merchant Center account id"}
	}
	base, err := connectors.BaseURL("endpoint", a.s.Endpoint, "https://merchantapi.googleapis.com")
	if err != nil {
		return nil, err
	}
	auth, err := connectors.BaseURL("authEndpoint", a.s.AuthEndpoint, "https://oauth2.googleapis.com")
	if err != nil {
		return nil, err
	}
	a.tokenURL = auth.JoinPath("token").String()
	a.api = &connectors.API{Base: base, Client: cfg.HTTPClient, Authorize: connectors.BearerFrom(a.token, "")}
	return a, nil
}

func (a *adapter) Type() string      { return Type }
func (a *adapter) Handles() []string { return []string{"product.updated"} }

func (a *adapter) Poll(context.Context, string) (connectors.PollResult, error) {
	return connectors.PollResult{}, connectors.ErrNoPoll
}

// token signs a JWT assertion (RS256, iss = the service account, aud = the
// token endpoint) and exchanges it for an access token.
func (a *adapter) token(ctx context.Context) (*oauth2.Token, error) {
	return a.tokens.Token(ctx, a.cfg, func(ctx context.Context, c connectors.Credentials) (oauth2.TokenSource, error) {
		if !strings.Contains(c.APISecret, "PRIVATE KEY") {
			return nil, errors.New("api-secret must be the service account's PEM private key")
		}
		conf := &jwt.Config{Email: c.APIKey, PrivateKey: []byte(c.APISecret), PrivateKeyID: a.s.KeyID,
			Scopes: []string{Scope}, TokenURL: a.tokenURL}
		return conf.TokenSource(ctx), nil
	})
}

func (a *adapter) HandleEvents(ctx context.Context, events []connectors.Event) []error {
	return connectors.Each(ctx, events, func(ctx context.Context, e connectors.Event) error {
		if e.Type != "product.updated" {
			return connectors.Permanent(fmt.Errorf("google-shopping does not handle %s", e.Type))
		}
		return a.upsert(ctx, e)
	})
}

func (a *adapter) account() string { return "accounts/" + a.s.AccountID }

// upsert inserts the whole product, or patches the attributes present when
// the event lacks what an insert needs (title and link).
func (a *adapter) upsert(ctx context.Context, e connectors.Event) error {
	p, err := connectors.ProductPayload(e, false)
	if err != nil {
		return err
	}
	attrs, mask, err := attributes(p)
	if err != nil {
		return connectors.Permanent(fmt.Errorf("%s %s: %w", e.Type, e.ID, err))
	}
	if len(mask) == 0 {
		return connectors.Missing(e, "any attribute Google Shopping keeps")
	}
	q := url.Values{"dataSource": {a.account() + "/dataSources/" + a.s.DataSourceID}}
	if p.Title != "" && p.URL != "" {
		input := map[string]any{"offerId": p.SKU, "contentLanguage": a.s.ContentLanguage, "feedLabel": a.s.FeedLabel, "productAttributes": attrs}
		return a.api.Do(ctx, http.MethodPost, "products/v1/"+a.account()+"/productInputs:insert", q, nil, input, nil)
	}
	q.Set("updateMask", strings.Join(mask, ","))
	name := a.s.ContentLanguage + "~" + a.s.FeedLabel + "~" + p.SKU
	return a.api.Do(ctx, http.MethodPatch, "products/v1/"+a.account()+"/productInputs/"+url.PathEscape(name), q, nil,
		map[string]any{"productAttributes": attrs}, nil)
}

// attributes maps a product to Merchant API product attributes, and names
// the ones set (as an update mask).
func attributes(p connectors.Product) (map[string]any, []string, error) {
	attrs := map[string]any{}
	set := func(name string, v any) { attrs[name] = v }
	if p.Title != "" {
		set("title", p.Title)
	}
	if p.Description != "" {
		set("description", p.Description)
	}
	if p.URL != "" {
		set("link", p.URL)
	}
	if p.Brand != "" {
		set("brand", p.Brand)
	}
	if p.GTIN != "" {
		set("gtins", []string{p.GTIN})
	}
	if len(p.ImageURLs) > 0 {
		set("imageLink", p.ImageURLs[0])
		if len(p.ImageURLs) > 1 {
			set("additionalImageLinks", p.ImageURLs[1:])
		}
	}
	if p.Condition != "" {
		set("condition", strings.ToUpper(p.Condition))
	}
	if p.Price != nil {
		micros, err := p.Price.Micros()
		if err != nil {
			return nil, nil, err
		}
		set("price", map[string]string{"amountMicros": strconv.FormatInt(micros, 10), "currencyCode": p.Price.Currency})
	}
	if p.Quantity != nil {
		availability := "IN_STOCK"
		if *p.Quantity <= 0 {
			availability = "OUT_OF_STOCK"
		}
		set("availability", availability)
	}
	mask := make([]string, 0, len(attrs))
	for name := range attrs {
		mask = append(mask, "productAttributes."+name)
	}
	slices.Sort(mask)
	return attrs, mask, nil
}
