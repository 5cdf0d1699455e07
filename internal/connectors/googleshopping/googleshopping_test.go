package googleshopping_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/googleshopping"
	"github.com/ss3dev/integration-operator/internal/connectors/marketplacetest"
)

func setup(t *testing.T, keyForJWT *rsa.PrivateKey, serverKey *rsa.PublicKey) (*marketplacetest.Google, connectors.Adapter) {
	t.Helper()
	fake := marketplacetest.NewGoogle("sync@shop.iam.gserviceaccount.com", "key-1", serverKey, "123456", "987")
	t.Cleanup(fake.Close)
	der, err := x509.MarshalPKCS8PrivateKey(keyForJWT)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	settings, _ := json.Marshal(map[string]string{"accountId": "123456", "dataSourceId": "987", "keyId": "key-1",
		"endpoint": fake.URL, "authEndpoint": fake.URL})
	a, err := googleshopping.New(connectors.Config{ID: uuid.New(), Settings: settings, HTTPClient: fake.Client(),
		Credentials: func(context.Context) (connectors.Credentials, error) {
			return connectors.Credentials{APIKey: "sync@shop.iam.gserviceaccount.com", APISecret: pemKey}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return fake, a
}

func event(data string) connectors.Event {
	return connectors.Event{ID: uuid.New(), Type: "product.updated", Time: time.Now(), Data: json.RawMessage(data)}
}

func TestProductInsertAndPatch(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	fake, a := setup(t, key, &key.PublicKey)
	errs := a.HandleEvents(context.Background(), []connectors.Event{
		event(`{"sku":"SKU-1","title":"Mug","url":"https://shop.example/mug","imageUrls":["https://shop.example/m.jpg"],"condition":"new","price":{"amount":"12.5","currency":"USD"},"quantity":0}`),
		event(`{"sku":"SKU-1","price":{"amount":"11.00","currency":"USD"}}`),
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if p := fake.Problems(); len(p) > 0 {
		t.Fatal(p)
	}
	calls := fake.Calls()
	if len(calls) != 2 || calls[0].Path != "/products/v1/accounts/123456/productInputs:insert" ||
		calls[1].Path != "/products/v1/accounts/123456/productInputs/en~US~SKU-1" {
		t.Fatalf("calls: %+v", calls)
	}
	attrs := calls[0].Body["productAttributes"].(map[string]any)
	if attrs["price"].(map[string]any)["amountMicros"] != "12500000" || attrs["availability"] != "OUT_OF_STOCK" {
		t.Errorf("insert attributes: %v", attrs)
	}
	if calls[1].Query.Get("updateMask") != "productAttributes.price" {
		t.Errorf("patch updateMask %q", calls[1].Query.Get("updateMask"))
	}
	if fake.TokenExchanges() != 1 {
		t.Errorf("%d token exchanges, want 1", fake.TokenExchanges())
	}
}

func TestAssertionSignedWithTheWrongKeyIsRefused(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	fake, a := setup(t, other, &key.PublicKey)
	err := a.HandleEvents(context.Background(), []connectors.Event{event(`{"sku":"S","title":"T","url":"https://x"}`)})[0]
	if err == nil || connectors.IsPermanent(err) {
		t.Fatalf("want a retryable token error, got %v", err)
	}
	if len(fake.Calls()) != 0 {
		t.Fatal("a product call went out without a token")
	}
}

func TestSettingsAreChecked(t *testing.T) {
	for _, s := range []string{`{"dataSourceId":"1"}`, `{"accountId":"acme","dataSourceId":"1"}`, `{"accountId":"1","dataSourceId":"1","merchant":"x"}`} {
		_, err := googleshopping.New(connectors.Config{Settings: json.RawMessage(s)})
		var se *connectors.SettingsError
		if !errors.As(err, &se) {
			t.Errorf("%s: got %v, want a settings error", s, err)
		}
	}
}
