// Package ebay is the eBay connector: products become Inventory API
// inventory items, and prices and quantities go out through the bulk
// price/quantity update, with a user access token obtained from the
// seller's refresh token.
package ebay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/ss3dev/integration-operator/internal/connectors"
)

// Type is the connector type served here.
const Type = "ebay"

// Registration describes the adapter: app client id and secret as api-key
// and api-secret, and the seller's refresh token.
func Registration() connectors.Registration {
	return connectors.Registration{Type: Type, New: New, Credentials: []string{
		connectors.CredentialAPIKey, connectors.CredentialAPISecret, connectors.CredentialRefreshToken}}
}

// bulkLimit is the most requests eBay takes in one bulk update.
const bulkLimit = 25

type settings struct {
	MarketplaceID   string   `json:"marketplaceId"`
	Endpoint        string   `json:"endpoint"`
	ContentLanguage string   `json:"contentLanguage"`
	Scopes          []string `json:"scopes"`
}

type adapter struct {
	cfg    connectors.Config
	s      settings
	base   *url.URL
	api    *connectors.API
	tokens connectors.TokenCache
}

// New checks the settings and opens the adapter for one ConnectorConfig.
func New(cfg connectors.Config) (connectors.Adapter, error) {
	a := &adapter{cfg: cfg, s: settings{MarketplaceID: "EBAY_US", ContentLanguage: "en-US",
		Scopes: []string{"https://api.ebay.com/oauth/api_scope/sell.inventory"}}}
	if err := connectors.DecodeSettings(cfg.Settings, &a.s); err != nil {
		return nil, err
	}
	if len(a.s.Scopes) == 0 {
		return nil, &connectors.SettingsError{Setting: "scopes", Problem: "must list at least the sell.inventory scope"}
	}
	var err error
	if a.base, err = connectors.BaseURL("endpoint", a.s.Endpoint, "https://api.ebay.com"); err != nil {
		return nil, err
	}
	a.api = &connectors.API{Base: a.base, Client: cfg.HTTPClient, Authorize: connectors.BearerFrom(a.token, "")}
	return a, nil
}

func (a *adapter) Type() string      { return Type }
func (a *adapter) Handles() []string { return []string{"product.updated", "inventory.updated"} }

func (a *adapter) Poll(context.Context, string) (connectors.PollResult, error) {
	return connectors.PollResult{}, connectors.ErrNoPoll
}

func (a *adapter) token(ctx context.Context) (*oauth2.Token, error) {
	return a.tokens.Token(ctx, a.cfg, func(ctx context.Context, c connectors.Credentials) (oauth2.TokenSource, error) {
		return &refresher{ctx: ctx, a: a, creds: c}, nil
	})
}

// refresher is eBay's refresh-token grant: Basic client authentication and
// the scopes named in the form, which x/oauth2's own refresh does not send.
type refresher struct {
	ctx   context.Context
	a     *adapter
	creds connectors.Credentials
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

func (r *refresher) Token() (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.creds.RefreshToken},
		"scope": {strings.Join(r.a.s.Scopes, " ")}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.a.base.JoinPath("identity/v1/oauth2/token").String(),
		strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(r.creds.APIKey, r.creds.APISecret)
	resp, err := r.a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ans tokenAnswer
	var fail struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = decodeJSON(resp, &fail)
		return nil, fmt.Errorf("the token endpoint answered %d (%s)", resp.StatusCode, fail.Error)
	}
	if err := decodeJSON(resp, &ans); err != nil || ans.AccessToken == "" {
		return nil, errors.New("the token endpoint's answer has no access_token")
	}
	return &oauth2.Token{AccessToken: ans.AccessToken, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Duration(ans.ExpiresIn) * time.Second)}, nil
}

// HandleEvents sends products one by one (an inventory item each) and
// gathers quantity updates into bulk calls of up to 25.
func (a *adapter) HandleEvents(ctx context.Context, events []connectors.Event) []error {
	errs := make([]error, len(events))
	var quantities []int // indexes of inventory.updated events
	for i, e := range events {
		switch e.Type {
		case "product.updated":
			errs[i] = a.putItem(ctx, e)
		case "inventory.updated":
			quantities = append(quantities, i)
		default:
			errs[i] = connectors.Permanent(fmt.Errorf("ebay does not handle %s", e.Type))
		}
	}
	for start := 0; start < len(quantities); start += bulkLimit {
		chunk := quantities[start:min(start+bulkLimit, len(quantities))]
		a.bulkQuantities(ctx, events, chunk, errs)
	}
	return errs
}

func (a *adapter) itemHeader() http.Header {
	return http.Header{"Content-Language": {a.s.ContentLanguage}, "X-Ebay-C-Marketplace-Id": {a.s.MarketplaceID}}
}

// putItem creates or replaces the inventory item, then sets the price on
// the item's offers, if it has any.
func (a *adapter) putItem(ctx context.Context, e connectors.Event) error {
	p, err := connectors.ProductPayload(e, true)
	if err != nil {
		return err
	}
	product := map[string]any{"title": p.Title}
	if p.Description != "" {
		product["description"] = p.Description
	}
	if len(p.ImageURLs) > 0 {
		product["imageUrls"] = p.ImageURLs
	}
	if p.Brand != "" {
		product["brand"] = p.Brand
		product["aspects"] = map[string][]string{"Brand": {p.Brand}}
	}
	if p.GTIN != "" {
		product["ean"] = []string{p.GTIN}
	}
	item := map[string]any{"product": product, "condition": condition(p.Condition)}
	if p.Quantity != nil {
		item["availability"] = map[string]any{"shipToLocationAvailability": map[string]int{"quantity": *p.Quantity}}
	}
	if err := a.api.Do(ctx, http.MethodPut, "sell/inventory/v1/inventory_item/"+url.PathEscape(p.SKU), nil, a.itemHeader(), item, nil); err != nil {
		return err
	}
	if p.Price == nil {
		return nil
	}
	if _, err := p.Price.Micros(); err != nil {
		return connectors.Permanent(fmt.Errorf("%s %s: %w", e.Type, e.ID, err))
	}
	offers, err := a.offerIDs(ctx, p.SKU)
	if err != nil || len(offers) == 0 {
		return err // no offer yet: the price goes out when one is published
	}
	var reqOffers []map[string]any
	for _, id := range offers {
		reqOffers = append(reqOffers, map[string]any{"offerId": id, "price": map[string]string{"value": p.Price.Amount, "currency": p.Price.Currency}})
	}
	var ans bulkAnswer
	body := map[string]any{"requests": []map[string]any{{"sku": p.SKU, "offers": reqOffers}}}
	if err := a.api.Do(ctx, http.MethodPost, "sell/inventory/v1/bulk_update_price_quantity", nil, nil, body, &ans); err != nil {
		return err
	}
	return ans.errFor(p.SKU)
}

// offerIDs lists the item's offers on the configured marketplace.
func (a *adapter) offerIDs(ctx context.Context, sku string) ([]string, error) {
	var ans struct {
		Offers []struct {
			OfferID       string `json:"offerId"`
			MarketplaceID string `json:"marketplaceId"`
		} `json:"offers"`
	}
	q := url.Values{"sku": {sku}, "marketplace_id": {a.s.MarketplaceID}}
	err := a.api.Do(ctx, http.MethodGet, "sell/inventory/v1/offer", q, nil, nil, &ans)
	var se *connectors.StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, o := range ans.Offers {
		if o.MarketplaceID == "" || o.MarketplaceID == a.s.MarketplaceID {
			ids = append(ids, o.OfferID)
		}
	}
	return ids, nil
}

type bulkAnswer struct {
	Responses []struct {
		StatusCode int    `json:"statusCode"`
		SKU        string `json:"sku"`
		Errors     []struct {
			ErrorID int    `json:"errorId"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"responses"`
}

// errFor is the bulk answer's verdict on one SKU.
func (b bulkAnswer) errFor(sku string) error {
	for _, r := range b.Responses {
		if r.SKU != sku || r.StatusCode == http.StatusOK {
			continue
		}
		var msgs []string
		for _, e := range r.Errors {
			msgs = append(msgs, fmt.Sprintf("%d: %s", e.ErrorID, e.Message))
		}
		err := fmt.Errorf("eBay refused the update of %s (%d): %s", sku, r.StatusCode, strings.Join(msgs, "; "))
		if r.StatusCode >= 500 {
			return err
		}
		return connectors.Permanent(err)
	}
	for _, r := range b.Responses {
		if r.SKU == sku {
			return nil
		}
	}
	return fmt.Errorf("eBay's bulk answer says nothing about %s", sku)
}

// bulkQuantities sends one bulk update for the events at idx and records
// each one's verdict in errs. The last quantity per SKU wins.
func (a *adapter) bulkQuantities(ctx context.Context, events []connectors.Event, idx []int, errs []error) {
	latest := map[string]int{}
	var order []string
	for _, i := range idx {
		var inv connectors.Inventory
		if err := connectors.Payload(events[i], &inv); err != nil {
			errs[i] = err
			continue
		}
		if inv.SKU == "" || inv.Quantity == nil || *inv.Quantity < 0 {
			errs[i] = connectors.Missing(events[i], "sku and quantity (a whole number, 0 or more)")
			continue
		}
		if _, seen := latest[inv.SKU]; !seen {
			order = append(order, inv.SKU)
		}
		latest[inv.SKU] = *inv.Quantity
	}
	if len(order) == 0 {
		return
	}
	reqs := make([]map[string]any, len(order))
	for i, sku := range order {
		reqs[i] = map[string]any{"sku": sku, "shipToLocationAvailability": map[string]int{"quantity": latest[sku]}}
	}
	var ans bulkAnswer
	err := a.api.Do(ctx, http.MethodPost, "sell/inventory/v1/bulk_update_price_quantity", nil, nil, map[string]any{"requests": reqs}, &ans)
	for _, i := range idx {
		if errs[i] != nil {
			continue
		}
		if err != nil {
			errs[i] = err
			continue
		}
		var inv connectors.Inventory
		_ = connectors.Payload(events[i], &inv)
		errs[i] = ans.errFor(inv.SKU)
	}
}

func condition(c string) string {
	switch strings.ToLower(c) {
	case "used":
		return "USED_GOOD"
	case "refurbished":
		return "SELLER_REFURBISHED"
	}
	return "NEW"
}

func decodeJSON(resp *http.Response, dst any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(dst)
}
