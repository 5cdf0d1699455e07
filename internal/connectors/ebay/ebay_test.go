package ebay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/ebay"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
)

func setup(t *testing.T) (*marketplacetest.Ebay, connectors.Adapter) {
	t.Helper()
	fake := marketplacetest.NewEbay("App-ID", "Cert-ID", "v^1.1#refresh")
	t.Cleanup(fake.Close)
	settings, _ := json.Marshal(map[string]string{"endpoint": fake.URL})
	a, err := ebay.New(connectors.Config{ID: uuid.New(), StoreID: "s", Settings: settings, HTTPClient: fake.Client(),
		Credentials: func(context.Context) (connectors.Credentials, error) {
			return connectors.Credentials{APIKey: "App-ID", APISecret: "Cert-ID", RefreshToken: "v^1.1#refresh"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return fake, a
}

func event(typ, data string) connectors.Event {
	return connectors.Event{ID: uuid.New(), Type: typ, Time: time.Now(), Data: json.RawMessage(data)}
}

func TestProductBecomesInventoryItemAndPrice(t *testing.T) {
	fake, a := setup(t)
	fake.AddOffer("SKU-1", "OFFER-9")
	errs := a.HandleEvents(context.Background(), []connectors.Event{
		event("product.updated", `{"sku":"SKU-1","title":"Mug","brand":"Acme","condition":"new","quantity":4,"price":{"amount":"9.99","currency":"USD"}}`),
		event("product.updated", `{"sku":"SKU-2","title":"Plate"}`),
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	calls := fake.Calls()
	var paths []string
	for _, c := range calls {
		paths = append(paths, c.Method+" "+c.Path)
	}
	want := []string{"PUT /sell/inventory/v1/inventory_item/SKU-1", "GET /sell/inventory/v1/offer",
		"POST /sell/inventory/v1/bulk_update_price_quantity", "PUT /sell/inventory/v1/inventory_item/SKU-2"}
	if !slices.Equal(paths, want) {
		t.Fatalf("calls %v, want %v", paths, want)
	}
	offer := calls[2].Body["requests"].([]any)[0].(map[string]any)["offers"].([]any)[0].(map[string]any)
	if offer["offerId"] != "OFFER-9" || offer["price"].(map[string]any)["value"] != "9.99" {
		t.Errorf("bulk price update: %v", offer)
	}
	if calls[0].Header.Get("Content-Language") != "en-US" {
		t.Errorf("Content-Language %q", calls[0].Header.Get("Content-Language"))
	}
	if fake.TokenExchanges() != 1 {
		t.Errorf("%d token exchanges, want 1", fake.TokenExchanges())
	}
}

func TestQuantitiesGoOutInBulk(t *testing.T) {
	fake, a := setup(t)
	fake.RefuseSKU("SKU-BAD", 400)
	var events []connectors.Event
	for i := range 30 {
		events = append(events, event("inventory.updated", fmt.Sprintf(`{"sku":"SKU-%d","quantity":%d}`, i, i)))
	}
	events = append(events, event("inventory.updated", `{"sku":"SKU-3","quantity":99}`),
		event("inventory.updated", `{"sku":"SKU-BAD","quantity":1}`), event("inventory.updated", `{"sku":"SKU-X"}`))
	errs := a.HandleEvents(context.Background(), events)
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	if calls := fake.Calls(); len(calls) != 2 {
		t.Fatalf("%d bulk calls for 33 updates, want 2 (25 per call)", len(calls))
	}
	for i, err := range errs[:31] {
		if err != nil {
			t.Errorf("update %d: %v", i, err)
		}
	}
	if !connectors.IsPermanent(errs[31]) || !connectors.IsPermanent(errs[32]) {
		t.Errorf("a refused SKU and a payload without quantity must fail permanently: %v / %v", errs[31], errs[32])
	}
	fake.FailNext(1, http.StatusInternalServerError)
	if err := a.HandleEvents(context.Background(), events[:1])[0]; err == nil || connectors.IsPermanent(err) {
		t.Errorf("a 500 must be retryable, got %v", err)
	}
}
