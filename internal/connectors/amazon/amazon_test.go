package amazon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/amazon"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
)

func open(t *testing.T, fake *marketplacetest.Amazon, creds *connectors.Credentials) connectors.Adapter {
	t.Helper()
	settings, _ := json.Marshal(map[string]string{"sellerId": "A1SELLER", "marketplaceId": "ATVPDKIKX0DER",
		"endpoint": fake.URL, "lwaEndpoint": fake.URL})
	a, err := amazon.New(connectors.Config{ID: uuid.New(), StoreID: "store-1", Settings: settings, HTTPClient: fake.Client(),
		Credentials: func(context.Context) (connectors.Credentials, error) { return *creds, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func event(typ string, data string) connectors.Event {
	return connectors.Event{ID: uuid.New(), Type: typ, StoreID: "store-1", Time: time.Now(), Data: json.RawMessage(data)}
}

func newFake(t *testing.T) (*marketplacetest.Amazon, *connectors.Credentials) {
	fake := marketplacetest.NewAmazon("amzn1.application-oa2-client.x", "lwa-secret", "Atzr|refresh", "A1SELLER", "ATVPDKIKX0DER")
	t.Cleanup(fake.Close)
	return fake, &connectors.Credentials{APIKey: fake.ClientID, APISecret: fake.ClientSecret, RefreshToken: fake.RefreshToken}
}

func TestEventsBecomeSellingPartnerCalls(t *testing.T) {
	fake, creds := newFake(t)
	a := open(t, fake, creds)
	errs := a.HandleEvents(context.Background(), []connectors.Event{
		event("product.updated", `{"sku":"SKU-1","title":"Mug","description":"A mug","brand":"Acme","price":{"amount":"12.50","currency":"USD"},"quantity":7}`),
		event("inventory.updated", `{"sku":"SKU-1","quantity":3}`),
		event("order.fulfilled", `{"marketplaceOrderId":"114-1234567-1234567","carrier":"UPS","trackingNumber":"1Z999","shippedAt":"2026-11-20T10:00:00Z","items":[{"marketplaceItemId":"OI-1","quantity":1}]}`),
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatalf("the SP-API stand-in refused requests: %v", p)
	}
	calls := fake.Calls()
	if len(calls) != 3 {
		t.Fatalf("want 3 SP-API calls, got %d", len(calls))
	}
	put, patch, ship := calls[0], calls[1], calls[2]
	if put.Method != http.MethodPut || put.Path != "/listings/2021-08-01/items/A1SELLER/SKU-1" {
		t.Errorf("product.updated: %s %s", put.Method, put.Path)
	}
	attrs := put.Body["attributes"].(map[string]any)
	if got := attrs["item_name"].([]any)[0].(map[string]any)["value"]; got != "Mug" {
		t.Errorf("item_name = %v", got)
	}
	price := attrs["purchasable_offer"].([]any)[0].(map[string]any)["our_price"].([]any)[0].(map[string]any)["schedule"].([]any)[0].(map[string]any)["value_with_tax"]
	if price != 12.5 {
		t.Errorf("value_with_tax = %v, want the number 12.5", price)
	}
	if patch.Method != http.MethodPatch || patch.Body["patches"].([]any)[0].(map[string]any)["value"].([]any)[0].(map[string]any)["quantity"] != 3.0 {
		t.Errorf("inventory.updated: %s %v", patch.Method, patch.Body)
	}
	if ship.Path != "/orders/v0/orders/114-1234567-1234567/shipmentConfirmation" || ship.Body["packageDetail"].(map[string]any)["trackingNumber"] != "1Z999" {
		t.Errorf("order.fulfilled: %s %v", ship.Path, ship.Body)
	}
	if n := fake.TokenExchanges(); n != 1 {
		t.Errorf("%d LWA token exchanges for three calls, want 1 (the token is reused)", n)
	}
}

func TestFailuresAreClassified(t *testing.T) {
	fake, creds := newFake(t)
	a := open(t, fake, creds)
	errs := a.HandleEvents(context.Background(), []connectors.Event{
		event("product.updated", `{"title":"no sku"}`),
		event("inventory.updated", `{"sku":"SKU-1"}`),
	})
	for i, err := range errs {
		if !connectors.IsPermanent(err) {
			t.Errorf("event %d: a payload the marketplace cannot take must fail permanently, got %v", i, err)
		}
	}
	fake.FailNext(1, http.StatusServiceUnavailable)
	err := a.HandleEvents(context.Background(), []connectors.Event{event("inventory.updated", `{"sku":"SKU-1","quantity":1}`)})[0]
	if err == nil || connectors.IsPermanent(err) {
		t.Errorf("503 must be retryable, got %v", err)
	}
	fake.FailNext(1, http.StatusTooManyRequests)
	if err := a.HandleEvents(context.Background(), []connectors.Event{event("inventory.updated", `{"sku":"SKU-1","quantity":1}`)})[0]; err == nil || connectors.IsPermanent(err) {
		t.Errorf("429 must be retryable, got %v", err)
	}
	fake.FailNext(1, http.StatusForbidden)
	if err := a.HandleEvents(context.Background(), []connectors.Event{event("inventory.updated", `{"sku":"SKU-1","quantity":1}`)})[0]; !connectors.IsPermanent(err) {
		t.Errorf("403 must be permanent, got %v", err)
	}
}

func TestRevokedRefreshTokenAndRotation(t *testing.T) {
	fake, creds := newFake(t)
	creds.RefreshToken = "Atzr|revoked"
	a := open(t, fake, creds)
	err := a.HandleEvents(context.Background(), []connectors.Event{event("inventory.updated", `{"sku":"S","quantity":1}`)})[0]
	if err == nil || connectors.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("a refused refresh token should be a retryable error naming invalid_grant, got %v", err)
	}
	if strings.Contains(err.Error(), "Atzr|revoked") || strings.Contains(err.Error(), creds.APISecret) {
		t.Fatal("the error reveals a credential")
	}
	creds.RefreshToken = fake.RefreshToken // the Secret was fixed; Vault now has the new one
	if err := a.HandleEvents(context.Background(), []connectors.Event{event("inventory.updated", `{"sku":"S","quantity":1}`)})[0]; err != nil {
		t.Fatalf("after the credentials changed: %v", err)
	}
}

func TestPollPublishesNewOrdersOnce(t *testing.T) {
	fake, creds := newFake(t)
	a := open(t, fake, creds)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, id := range []string{"111-0000001-0000001", "111-0000002-0000002", "111-0000003-0000003"} {
		fake.AddOrder(marketplacetest.AmazonOrder{ID: id, Purchased: base.Add(time.Duration(i) * time.Minute), Status: "Unshipped", Amount: "10.00", Currency: "USD"})
	}
	first, err := a.Poll(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Events) != 2 || first.EntityType != "order" || !first.More {
		t.Fatalf("first poll: %d events of %q, more %v; want the first page's 2 orders and more to come", len(first.Events), first.EntityType, first.More)
	}
	res, err := a.Poll(context.Background(), first.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 || res.More {
		t.Fatalf("second poll: %d events, more %v; want the last page's 1 order and no more", len(res.Events), res.More)
	}
	var data map[string]any
	_ = json.Unmarshal(res.Events[0].Data, &data)
	if res.Events[0].Type != amazon.OrderReceived || data["marketplaceOrderId"] != "111-0000003-0000003" || res.Events[0].StoreID != "store-1" {
		t.Errorf("event: %s %v", res.Events[0].Type, data)
	}
	if len(fake.Calls()) != 2 {
		t.Errorf("%d getOrders calls, want 2 pages", len(fake.Calls()))
	}
	again, err := a.Poll(context.Background(), res.Cursor)
	if err != nil {
		t.Fatal(err)
	}
	// The cursor is inclusive: the newest order may come again, with the same id.
	for _, e := range again.Events {
		if e.ID != res.Events[0].ID {
			t.Errorf("third poll published %s, which is not the newest order's id", e.ID)
		}
	}
	if again.More {
		t.Error("third poll says more, with nothing new")
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
}

func TestSettingsAreChecked(t *testing.T) {
	for settings, want := range map[string]string{
		`{"marketplaceId":"X"}`:                                         "settings.sellerId: is required",
		`{"sellerId":"S","marketplaceId":"X","region":"eu"}`:            "settings.region: is not a setting",
		`{"sellerId":"S","marketplaceId":"X","endpoint":"ftp:x"}`:       "settings.endpoint",
		`{"sellerId":"S","marketplaceId":"X","initialLookback":"soon"}`: "settings.initialLookback",
	} {
		_, err := amazon.New(connectors.Config{Settings: json.RawMessage(settings)})
		var se *connectors.SettingsError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want a settings error containing %q", settings, err, want)
		}
	}
}

func TestBusyStoresWaitForTheListingsRate(t *testing.T) {
	fake, creds := newFake(t)
	a := open(t, fake, creds)
	var events []connectors.Event
	for i := range 15 {
		events = append(events, event("inventory.updated", fmt.Sprintf(`{"sku":"SKU-%d","quantity":%d}`, i, i)))
	}
	for i, err := range a.HandleEvents(context.Background(), events) {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	if n := fake.Throttled(); n != 0 {
		t.Errorf("the marketplace throttled %d calls; the adapter should keep to the rate", n)
	}
	// With too little time left for its turn, an event is held back, not failed.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var held int
	for _, err := range a.HandleEvents(ctx, events[:5]) {
		if connectors.IsDeferred(err) {
			held++
		}
	}
	if held == 0 {
		t.Error("no event was held back although the rate's tokens were spent")
	}
}
