package connectors

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The platform's event payloads that adapters read.

// Product is the data of product.updated.
type Product struct {
	ProductID   string   `json:"productId"`
	SKU         string   `json:"sku"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Brand       string   `json:"brand"`
	Price       *Money   `json:"price"`
	Quantity    *int     `json:"quantity"`
	Condition   string   `json:"condition"` // new, used, refurbished
	ImageURLs   []string `json:"imageUrls"`
	URL         string   `json:"url"` // the product's page in the store
	GTIN        string   `json:"gtin"`
}

// ProductPayload decodes a product.updated event, requiring a SKU and,
// when the marketplace needs one to list it, a title.
func ProductPayload(e Event, needTitle bool) (Product, error) {
	var p Product
	if err := Payload(e, &p); err != nil {
		return p, err
	}
	if p.SKU == "" {
		return p, Missing(e, "sku")
	}
	if needTitle && p.Title == "" {
		return p, Missing(e, "title")
	}
	return p, nil
}

// Inventory is the data of inventory.updated.
type Inventory struct {
	SKU      string `json:"sku"`
	Quantity *int   `json:"quantity"`
}

// Fulfillment is the data of order.fulfilled for an order that came from a
// marketplace.
type Fulfillment struct {
	OrderID            string    `json:"orderId"`
	MarketplaceOrderID string    `json:"marketplaceOrderId"`
	Carrier            string    `json:"carrier"`
	TrackingNumber     string    `json:"trackingNumber"`
	ShippingMethod     string    `json:"shippingMethod"`
	ShippedAt          time.Time `json:"shippedAt"`
	Items              []struct {
		MarketplaceItemID string `json:"marketplaceItemId"`
		Quantity          int    `json:"quantity"`
	} `json:"items"`
}

// Money is an amount as a decimal string ("19.99") in an ISO 4217 currency.
type Money struct {
	Amount   string `json:"amount"`
	Currency string `json:"currency"`
}

// Micros is the amount in millionths, without going through floating point.
func (m Money) Micros() (int64, error) {
	whole, frac, _ := strings.Cut(strings.TrimSpace(m.Amount), ".")
	if whole == "" || len(frac) > 6 || strings.TrimLeft(whole+frac, "0123456789") != "" {
		return 0, fmt.Errorf("price %q is not a decimal amount", m.Amount)
	}
	frac += strings.Repeat("0", 6-len(frac))
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("price %q: %w", m.Amount, err)
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return w*1_000_000 + f, nil
}

// entityKeyLimit bounds an entity key (it is stored and indexed); a longer
// identifier is hashed to a fixed length.
const entityKeyLimit = 200

// EntityKey names what an event changes at a marketplace, so that one
// entity's events are handed over one at a time and in event order:
// product and inventory updates by SKU (both set its quantity), order
// events by the marketplace's order id or the platform's. Empty when the
// event names no entity (its order does not matter).
func EntityKey(eventType string, data json.RawMessage) string {
	var ids struct {
		SKU                any `json:"sku"`
		OrderID            any `json:"orderId"`
		MarketplaceOrderID any `json:"marketplaceOrderId"`
	}
	if json.Unmarshal(data, &ids) != nil {
		return ""
	}
	entity, _, _ := strings.Cut(eventType, ".")
	var kind string
	var id any
	switch {
	case (entity == "product" || entity == "inventory") && ids.SKU != nil:
		kind, id = "sku", ids.SKU
	case entity == "order" && ids.MarketplaceOrderID != nil:
		kind, id = "marketplace-order", ids.MarketplaceOrderID
	case entity == "order" && ids.OrderID != nil:
		kind, id = "order", ids.OrderID
	default:
		return ""
	}
	text := fmt.Sprint(id)
	if s, ok := id.(string); ok {
		text = s
	}
	if text == "" {
		return ""
	}
	key := kind + ":" + text
	if len(key) > entityKeyLimit || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		sum := sha256.Sum256([]byte(text))
		key = kind + ":sha256:" + hex.EncodeToString(sum[:])
	}
	return key
}
