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

// pollCursor is where polling resumes. Between walks NextToken is empty
// and CreatedAfter starts the next walk; during one, CreatedAfter is where
// the walk began, NextToken its next page and Newest the newest
// PurchaseDate seen so far, which starts the walk after.
type pollCursor struct {
	V            int       `json:"v"`
	CreatedAfter time.Time `json:"createdAfter"`
	NextToken    string    `json:"nextToken,omitzero"`
	Newest       time.Time `json:"newest,omitzero"`
}

// parseCursor reads a cursor: empty on the first poll (the lookback), a
// plain RFC 3339 time as rows written before page-by-page polling hold,
// or pollCursor's JSON.
func (a *adapter) parseCursor(raw string) (pollCursor, error) {
	switch {
	case raw == "":
		return pollCursor{CreatedAfter: time.Now().Add(-a.lookback)}, nil
	case !strings.HasPrefix(raw, "{"):
		t, err := time.Parse(time.RFC3339, raw)
		if err != nil {
			return pollCursor{}, fmt.Errorf("poll cursor %q is not an RFC 3339 time: %w", raw, err)
		}
		return pollCursor{CreatedAfter: t}, nil
	}
	var c pollCursor
	// The cursor is not echoed: it carries Amazon's NextToken.
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return pollCursor{}, fmt.Errorf("poll cursor is not one this adapter wrote: %w", err)
	}
	if c.V != 1 || c.CreatedAfter.IsZero() {
		return pollCursor{}, fmt.Errorf("poll cursor has version %d and createdAfter %v; want version 1 and a time", c.V, c.CreatedAfter)
	}
	return c, nil
}

func (c pollCursor) String() string {
	c.V, c.CreatedAfter, c.Newest = 1, c.CreatedAfter.UTC(), c.Newest.UTC()
	b, _ := json.Marshal(c) // times and a string: cannot fail
	return string(b)
}

func (a *adapter) ordersQuery(c pollCursor) url.Values {
	if c.NextToken != "" {
		return url.Values{"MarketplaceIds": {a.s.MarketplaceID}, "NextToken": {c.NextToken}}
	}
	return url.Values{"MarketplaceIds": {a.s.MarketplaceID}, "CreatedAfter": {c.CreatedAfter.UTC().Format(time.RFC3339)}}
}

// Poll pulls one page of the orders created after the cursor and makes each
// a marketplace.order.received event; More says another page follows.
// Pages go one per call so that the caller keeps each page's cursor
// before the next is fetched: at getOrders' rate (a page a minute once the
// burst is spent) a backlog takes many runs, and a failure on a late page
// must not throw away the earlier ones.
func (a *adapter) Poll(ctx context.Context, raw string) (connectors.PollResult, error) {
	res := connectors.PollResult{EntityType: "order", Cursor: raw}
	c, err := a.parseCursor(raw)
	if err != nil {
		return res, err
	}
	if c.NextToken == "" {
		// Amazon refuses a CreatedAfter later than two minutes ago.
		if edge := time.Now().Add(-2 * time.Minute); c.CreatedAfter.After(edge) {
			c.CreatedAfter = edge
		}
		c.Newest = time.Time{}
	}
	ans, wait, err := a.orders(ctx, a.ordersQuery(c))
	if err != nil && c.NextToken != "" && refusedToken(err) {
		// NextTokens expire (a backlog that waited too long): walk again
		// from the walk's start; event ids are stable, so what is read
		// twice is published under the same ids.
		c.NextToken = ""
		res.Cursor = c.String()
		ans, wait, err = a.orders(ctx, a.ordersQuery(c))
	}
	if err != nil {
		return res, err
	}
	if wait > 0 {
		res.More, res.Wait = true, wait
		return res, nil
	}
	newest := c.CreatedAfter
	if c.Newest.After(newest) {
		newest = c.Newest
	}
	for _, raw := range ans.Payload.Orders {
		var o order
		if err := json.Unmarshal(raw, &o); err != nil || o.AmazonOrderID == "" {
			return res, fmt.Errorf("orders answer: an order without AmazonOrderId")
		}
		if t, err := time.Parse(time.RFC3339, o.PurchaseDate); err == nil && t.After(newest) {
			newest = t
		}
		res.Events = append(res.Events, a.orderEvent(o, raw))
	}
	if ans.Payload.NextToken != "" {
		res.Cursor, res.More = pollCursor{CreatedAfter: c.CreatedAfter, NextToken: ans.Payload.NextToken, Newest: newest}.String(), true
		return res, nil
	}
	// CreatedAfter is inclusive, so the next walk reads the newest order
	// again; its event id is the same, so the overlap is harmless.
	res.Cursor = pollCursor{CreatedAfter: newest}.String()
	return res, nil
}

// orders fetches one getOrders page in its turn of the rate. A wait above
// zero says the turn comes later than ctx allows: nothing was sent, and
// no turn was spent.
func (a *adapter) orders(ctx context.Context, q url.Values) (ans ordersAnswer, wait time.Duration, err error) {
	r := a.limits.orders.Reserve()
	wait = r.Delay()
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		r.Cancel()
		return ans, wait, nil
	}
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			r.Cancel()
			return ans, 0, connectors.Deferred(fmt.Errorf("GET orders/v0/orders waits for its SP-API rate: %w", ctx.Err()))
		}
	}
	err = a.api.Do(ctx, http.MethodGet, "orders/v0/orders", q, nil, nil, &ans)
	return ans, 0, err
}

// refusedToken reports Amazon refusing a NextToken, as it does once one
// has expired (400 InvalidInput). Any 400 counts: starting the walk again
// is harmless, and a request wrong in some other way fails again there.
func refusedToken(err error) bool {
	var se *connectors.StatusError
	return errors.As(err, &se) && se.Status == http.StatusBadRequest
}

func (a *adapter) orderEvent(o order, raw json.RawMessage) connectors.Event {
	data := map[string]any{"source": Type, "configId": a.cfg.ID.String(), "marketplaceOrderId": o.AmazonOrderID,
		"marketplaceId": o.MarketplaceID, "status": o.OrderStatus, "purchasedAt": o.PurchaseDate, "order": raw}
	if o.OrderTotal != nil {
		data["total"] = connectors.Money{Amount: o.OrderTotal.Amount, Currency: o.OrderTotal.CurrencyCode}
	}
	b, _ := json.Marshal(data)
	// The event's time is the order's, so that an order polled again is
	// the same event (id and time: the dispatcher's dedup key); an order
	// without a readable date gets the zero time, the same every time.
	at, _ := time.Parse(time.RFC3339, o.PurchaseDate)
	return connectors.Event{ID: uuid.NewSHA1(orderNamespace, []byte(a.cfg.ID.String()+"/"+o.AmazonOrderID)),
		Type: OrderReceived, StoreID: a.cfg.StoreID, Time: at, Data: b}
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
