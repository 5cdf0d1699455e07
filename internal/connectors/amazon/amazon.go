// Package amazon is the Amazon Selling Partner API connector: listings and
// quantities pushed through the Listings Items API, shipments confirmed
// through the Orders API, new orders polled and published as platform
// events. Calls carry a Login-with-Amazon access token obtained from the
// seller's refresh token.
package amazon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/time/rate"

	"github.com/ss3dev/integration-operator/internal/connectors"
)

// Type is the connector type served here.
const Type = "amazon"

// Registration describes the adapter to the registry: LWA client id and
// secret as api-key and api-secret, and the seller's refresh token.
func Registration() connectors.Registration {
	return connectors.Registration{Type: Type, New: New, Credentials: []string{
		connectors.CredentialAPIKey, connectors.CredentialAPISecret, connectors.CredentialRefreshToken}, Polls: true}
}

// OrderReceived is the platform event a polled order becomes.
const OrderReceived = "marketplace.order.received"

type settings struct {
	SellerID      string `json:"sellerId"`
	MarketplaceID string `json:"marketplaceId"`
	// Endpoint is the SP-API regional endpoint.
	Endpoint string `json:"endpoint"`
	// LWAEndpoint serves /auth/o2/token.
	LWAEndpoint        string `json:"lwaEndpoint"`
	ProductType        string `json:"productType"`
	LanguageTag        string `json:"languageTag"`
	FulfillmentChannel string `json:"fulfillmentChannel"`
	// InitialLookback is how far back the first poll looks for orders.
	InitialLookback string `json:"initialLookback"`
}

type adapter struct {
	cfg      connectors.Config
	s        settings
	lookback time.Duration
	lwa      *url.URL
	api      *connectors.API
	tokens   connectors.TokenCache
	limits   limits
}

// limits keep to SP-API's published per-operation rates (listings 5/s,
// shipment confirmations 2/s, getOrders 1/min; bursts 10, 10, 20), at 90%
// so that clock drift between our bucket and Amazon's does not earn 429s.
type limits struct{ listings, shipments, orders *rate.Limiter }

func newLimits() limits {
	return limits{listings: rate.NewLimiter(4.5, 10), shipments: rate.NewLimiter(1.8, 10), orders: rate.NewLimiter(rate.Limit(0.9/60), 20)}
}

// call waits for the operation's rate, then calls.
func (a *adapter) call(ctx context.Context, limit *rate.Limiter, method, path string, query url.Values, body, out any) error {
	if err := limit.Wait(ctx); err != nil {
		return connectors.Deferred(fmt.Errorf("%s %s waits for its SP-API rate: %w", method, path, err))
	}
	return a.api.Do(ctx, method, path, query, nil, body, out)
}

// New checks the settings and opens the adapter for one ConnectorConfig.
func New(cfg connectors.Config) (connectors.Adapter, error) {
	a := &adapter{cfg: cfg, limits: newLimits(), s: settings{ProductType: "PRODUCT", LanguageTag: "en_US", FulfillmentChannel: "DEFAULT", InitialLookback: "24h"}}
	if err := connectors.DecodeSettings(cfg.Settings, &a.s); err != nil {
		return nil, err
	}
	if err := errors.Join(connectors.Require("sellerId", a.s.SellerID), connectors.Require("marketplaceId", a.s.MarketplaceID)); err != nil {
		return nil, err
	}
	var err error
	if a.lookback, err = time.ParseDuration(a.s.InitialLookback); err != nil || a.lookback <= 0 {
		return nil, &connectors.SettingsError{Setting: "initialLookback", Problem: "must be a positive duration such as 24h"}
	}
	base, err := connectors.BaseURL("endpoint", a.s.Endpoint, "https://sellingpartnerapi-na.amazon.com")
	if err != nil {
		return nil, err
	}
	if a.lwa, err = connectors.BaseURL("lwaEndpoint", a.s.LWAEndpoint, "https://api.amazon.com"); err != nil {
		return nil, err
	}
	a.api = &connectors.API{Base: base, Client: cfg.HTTPClient, Authorize: connectors.BearerFrom(a.token, "x-amz-access-token")}
	return a, nil
}

func (a *adapter) Type() string { return Type }

func (a *adapter) Handles() []string {
	return []string{"product.updated", "inventory.updated", "order.fulfilled"}
}

// token exchanges the seller's refresh token at LWA (client id and secret
// in the form body, as LWA expects).
func (a *adapter) token(ctx context.Context) (*oauth2.Token, error) {
	return a.tokens.Token(ctx, a.cfg, func(ctx context.Context, c connectors.Credentials) (oauth2.TokenSource, error) {
		conf := &oauth2.Config{ClientID: c.APIKey, ClientSecret: c.APISecret,
			Endpoint: oauth2.Endpoint{TokenURL: a.lwa.JoinPath("auth/o2/token").String(), AuthStyle: oauth2.AuthStyleInParams}}
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: c.RefreshToken}), nil
	})
}

func (a *adapter) HandleEvents(ctx context.Context, events []connectors.Event) []error {
	return connectors.Each(ctx, events, func(ctx context.Context, e connectors.Event) error {
		switch e.Type {
		case "product.updated":
			return a.putListing(ctx, e)
		case "inventory.updated":
			return a.patchQuantity(ctx, e)
		case "order.fulfilled":
			return a.confirmShipment(ctx, e)
		}
		return connectors.Permanent(fmt.Errorf("amazon does not handle %s", e.Type))
	})
}

type attr map[string]any

// listingsSubmission is the Listings Items API's answer.
type listingsSubmission struct {
	SKU          string `json:"sku"`
	Status       string `json:"status"`
	SubmissionID string `json:"submissionId"`
	Issues       []struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Severity string `json:"severity"`
	} `json:"issues"`
}

func (s listingsSubmission) err() error {
	if s.Status == "ACCEPTED" {
		return nil
	}
	var msgs []string
	for _, i := range s.Issues {
		if i.Severity == "ERROR" {
			msgs = append(msgs, i.Code+": "+i.Message)
		}
	}
	return connectors.Permanent(fmt.Errorf("listing %s was not accepted (%s): %s", s.SKU, s.Status, strings.Join(msgs, "; ")))
}

func (a *adapter) listingPath(sku string) string {
	return "listings/2021-08-01/items/" + url.PathEscape(a.s.SellerID) + "/" + url.PathEscape(sku)
}

func (a *adapter) listingQuery() url.Values {
	return url.Values{"marketplaceIds": {a.s.MarketplaceID}, "issueLocale": {a.s.LanguageTag}}
}

// putListing creates or fully replaces the listing from the product.
func (a *adapter) putListing(ctx context.Context, e connectors.Event) error {
	p, err := connectors.ProductPayload(e, true)
	if err != nil {
		return err
	}
	mp := a.s.MarketplaceID
	text := func(v string) []attr {
		return []attr{{"value": v, "language_tag": a.s.LanguageTag, "marketplace_id": mp}}
	}
	attrs := attr{"item_name": text(p.Title), "condition_type": []attr{{"value": conditionType(p.Condition), "marketplace_id": mp}}}
	if p.Description != "" {
		attrs["product_description"] = text(p.Description)
	}
	if p.Brand != "" {
		attrs["brand"] = text(p.Brand)
	}
	if p.Price != nil {
		if _, err := p.Price.Micros(); err != nil {
			return connectors.Permanent(fmt.Errorf("%s %s: %w", e.Type, e.ID, err))
		}
		attrs["purchasable_offer"] = []attr{{"marketplace_id": mp, "currency": p.Price.Currency,
			"our_price": []attr{{"schedule": []attr{{"value_with_tax": json.Number(p.Price.Amount)}}}}}}
	}
	if p.Quantity != nil {
		attrs["fulfillment_availability"] = a.availability(*p.Quantity)
	}
	var out listingsSubmission
	body := attr{"productType": a.s.ProductType, "requirements": "LISTING", "attributes": attrs}
	if err := a.call(ctx, a.limits.listings, http.MethodPut, a.listingPath(p.SKU), a.listingQuery(), body, &out); err != nil {
		return err
	}
	return out.err()
}

func (a *adapter) availability(quantity int) []attr {
	return []attr{{"fulfillment_channel_code": a.s.FulfillmentChannel, "quantity": quantity}}
}

// patchQuantity replaces only the listing's fulfillment availability.
func (a *adapter) patchQuantity(ctx context.Context, e connectors.Event) error {
	var inv connectors.Inventory
	if err := connectors.Payload(e, &inv); err != nil {
		return err
	}
	if inv.SKU == "" {
		return connectors.Missing(e, "sku")
	}
	if inv.Quantity == nil || *inv.Quantity < 0 {
		return connectors.Missing(e, "quantity (a whole number, 0 or more)")
	}
	body := attr{"productType": a.s.ProductType, "patches": []attr{{"op": "replace",
		"path": "/attributes/fulfillment_availability", "value": a.availability(*inv.Quantity)}}}
	var out listingsSubmission
	if err := a.call(ctx, a.limits.listings, http.MethodPatch, a.listingPath(inv.SKU), a.listingQuery(), body, &out); err != nil {
		return err
	}
	return out.err()
}

// confirmShipment tells Amazon the order shipped, with its tracking.
func (a *adapter) confirmShipment(ctx context.Context, e connectors.Event) error {
	var f connectors.Fulfillment
	if err := connectors.Payload(e, &f); err != nil {
		return err
	}
	switch {
	case f.MarketplaceOrderID == "":
		return connectors.Missing(e, "marketplaceOrderId")
	case f.Carrier == "":
		return connectors.Missing(e, "carrier")
	case len(f.Items) == 0:
		return connectors.Missing(e, "items")
	}
	shipped := f.ShippedAt
	if shipped.IsZero() {
		shipped = e.Time
	}
	items := make([]attr, len(f.Items))
	for i, it := range f.Items {
		if it.MarketplaceItemID == "" || it.Quantity <= 0 {
			return connectors.Missing(e, fmt.Sprintf("items[%d].marketplaceItemId and quantity", i))
		}
		items[i] = attr{"orderItemId": it.MarketplaceItemID, "quantity": it.Quantity}
	}
	pkg := attr{"packageReferenceId": "1", "carrierCode": f.Carrier, "trackingNumber": f.TrackingNumber,
		"shipDate": shipped.UTC().Format(time.RFC3339), "orderItems": items}
	if f.ShippingMethod != "" {
		pkg["shippingMethod"] = f.ShippingMethod
	}
	body := attr{"marketplaceId": a.s.MarketplaceID, "packageDetail": pkg}
	return a.call(ctx, a.limits.shipments, http.MethodPost, "orders/v0/orders/"+url.PathEscape(f.MarketplaceOrderID)+"/shipmentConfirmation", nil, body, nil)
}

type order struct {
	AmazonOrderID  string `json:"AmazonOrderId"`
	PurchaseDate   string `json:"PurchaseDate"`
	LastUpdateDate string `json:"LastUpdateDate"`
	OrderStatus    string `json:"OrderStatus"`
	MarketplaceID  string `json:"MarketplaceId"`
	OrderTotal     *struct {
		CurrencyCode string `json:"CurrencyCode"`
		Amount       string `json:"Amount"`
	} `json:"OrderTotal"`
}

type ordersAnswer struct {
	Payload struct {
		Orders        []json.RawMessage `json:"Orders"`
		NextToken     string            `json:"NextToken"`
		CreatedBefore string            `json:"CreatedBefore"`
	} `json:"payload"`
}

// orderNamespace makes an order's event id stable, so polling it twice
// publishes one event id.
var orderNamespace = uuid.MustParse("0b8a3f3e-6c1d-4f5e-8a9b-1c2d3e4f5a6b")

// Poll pulls orders created after the cursor (an RFC 3339 time), page by
// page, and makes each a marketplace.order.received event.
func (a *adapter) Poll(ctx context.Context, cursor string) (connectors.PollResult, error) {
	since := time.Now().Add(-a.lookback)
	if cursor != "" {
		t, err := time.Parse(time.RFC3339, cursor)
		if err != nil {
			return connectors.PollResult{}, fmt.Errorf("cursor %q: %w", cursor, err)
		}
		since = t
	}
	// Amazon refuses a CreatedAfter later than two minutes ago.
	if edge := time.Now().Add(-2 * time.Minute); since.After(edge) {
		since = edge
	}
	res := connectors.PollResult{EntityType: "order", Cursor: cursor}
	q := url.Values{"MarketplaceIds": {a.s.MarketplaceID}, "CreatedAfter": {since.UTC().Format(time.RFC3339)}}
	latest := since
	for page := 0; page < 100; page++ {
		var ans ordersAnswer
		if err := a.call(ctx, a.limits.orders, http.MethodGet, "orders/v0/orders", q, nil, &ans); err != nil {
			return res, err
		}
		for _, raw := range ans.Payload.Orders {
			var o order
			if err := json.Unmarshal(raw, &o); err != nil || o.AmazonOrderID == "" {
				return res, fmt.Errorf("orders answer: an order without AmazonOrderId")
			}
			if t, err := time.Parse(time.RFC3339, o.PurchaseDate); err == nil && t.After(latest) {
				latest = t
			}
			res.Events = append(res.Events, a.orderEvent(o, raw))
		}
		if ans.Payload.NextToken == "" {
			break
		}
		q = url.Values{"MarketplaceIds": {a.s.MarketplaceID}, "NextToken": {ans.Payload.NextToken}}
	}
	// Orders are matched on CreatedAfter, which is inclusive of later
	// polls' overlap; event ids are stable, so the overlap is harmless.
	res.Cursor = latest.UTC().Format(time.RFC3339)
	return res, nil
}

func (a *adapter) orderEvent(o order, raw json.RawMessage) connectors.Event {
	data := map[string]any{"source": Type, "configId": a.cfg.ID.String(), "marketplaceOrderId": o.AmazonOrderID,
		"marketplaceId": o.MarketplaceID, "status": o.OrderStatus, "purchasedAt": o.PurchaseDate, "order": raw}
	if o.OrderTotal != nil {
		data["total"] = connectors.Money{Amount: o.OrderTotal.Amount, Currency: o.OrderTotal.CurrencyCode}
	}
	b, _ := json.Marshal(data)
	return connectors.Event{ID: uuid.NewSHA1(orderNamespace, []byte(a.cfg.ID.String()+"/"+o.AmazonOrderID)),
		Type: OrderReceived, StoreID: a.cfg.StoreID, Time: time.Now(), Data: b}
}

func conditionType(c string) string {
	switch strings.ToLower(c) {
	case "used":
		return "used_good"
	case "refurbished":
		return "refurbished_refurbished"
	}
	return "new_new"
}
