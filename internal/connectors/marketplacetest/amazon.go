package marketplacetest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Amazon stands in for Login with Amazon and the Selling Partner API.
type Amazon struct {
	*Server
	ClientID, ClientSecret, RefreshToken string
	SellerID, MarketplaceID              string
	// PageSize orders per getOrders page (set it before the first call).
	PageSize int

	orders []AmazonOrder
	// failPages maps a getOrders page number (1 for the page CreatedAfter
	// answers) to how many more times it answers 503.
	failPages map[int]int
	// tokenGen is in every NextToken given; tokens of an older generation
	// have expired.
	tokenGen      int
	expiredTokens int
	// listingsQuota is SP-API's Listings Items rate: 5 requests/s, burst 10.
	listingsQuota *rate.Limiter
	throttled     int
}

// Throttled counts requests answered 429 for going over the rate.
func (a *Amazon) Throttled() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.throttled
}

// FailOrdersPage makes getOrders answer 503 the next times it is asked
// for page number page (1 is the page a CreatedAfter query answers, 2 the
// one its NextToken fetches, ...).
func (a *Amazon) FailOrdersPage(page, times int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failPages == nil {
		a.failPages = map[int]int{}
	}
	a.failPages[page] = times
}

// ExpireNextTokens makes every NextToken given so far expired: getOrders
// refuses them with 400 InvalidInput, as SP-API does.
func (a *Amazon) ExpireNextTokens() {
	a.mu.Lock()
	a.tokenGen++
	a.mu.Unlock()
}

// ExpiredTokens counts getOrders calls refused for an expired NextToken.
func (a *Amazon) ExpiredTokens() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.expiredTokens
}

// AmazonOrder is an order getOrders returns.
type AmazonOrder struct {
	ID        string
	Purchased time.Time
	Status    string
	Amount    string
	Currency  string
}

// NewAmazon starts the stand-in; Close it when done.
func NewAmazon(clientID, clientSecret, refreshToken, sellerID, marketplaceID string) *Amazon {
	a := &Amazon{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken, SellerID: sellerID,
		MarketplaceID: marketplaceID, PageSize: 2, listingsQuota: rate.NewLimiter(5, 10)}
	a.Server = newServer(a.serve)
	return a
}

// AddOrder makes an order visible to getOrders.
func (a *Amazon) AddOrder(o AmazonOrder) {
	a.mu.Lock()
	a.orders = append(a.orders, o)
	a.mu.Unlock()
}

func (a *Amazon) serve(s *Server, w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path == "/auth/o2/token" {
		a.token(w, r, body)
		return
	}
	if !s.authorized(r.Header.Get("x-amz-access-token")) {
		s.refuse(w, r, "x-amz-access-token is missing, unknown or expired")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 5 && parts[0] == "listings" && parts[1] == "2021-08-01" && parts[2] == "items":
		if !a.listingsQuota.Allow() {
			a.mu.Lock()
			a.throttled++
			a.mu.Unlock()
			writeJSON(w, http.StatusTooManyRequests, map[string]any{"errors": []map[string]string{{"code": "QuotaExceeded", "message": "You exceeded your quota for the requested resource."}}})
			return
		}
		a.listing(w, r, body, parts[3], parts[4])
	case r.Method == http.MethodGet && r.URL.Path == "/orders/v0/orders":
		a.getOrders(w, r)
	case len(parts) == 5 && r.Method == http.MethodPost && parts[0] == "orders" && parts[1] == "v0" && parts[4] == "shipmentConfirmation":
		a.confirmShipment(w, r, body)
	default:
		s.refuse(w, r, "no such SP-API operation")
	}
}

func (a *Amazon) token(w http.ResponseWriter, r *http.Request, body []byte) {
	f, ok := a.form(w, r, body)
	if !ok {
		return
	}
	if f.Get("grant_type") != "refresh_token" || f.Get("refresh_token") == "" || f.Get("client_id") == "" || f.Get("client_secret") == "" {
		a.refuse(w, r, "LWA wants grant_type=refresh_token, refresh_token, client_id and client_secret in the form; got keys %v", keys(f))
		return
	}
	if r.Header.Get("Authorization") != "" {
		a.refuse(w, r, "LWA takes the client credentials in the form, not an Authorization header")
		return
	}
	if f.Get("client_id") != a.ClientID || f.Get("client_secret") != a.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "Client authentication failed"})
		return
	}
	if f.Get("refresh_token") != a.RefreshToken {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "The request has an invalid grant parameter"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": a.issue(time.Hour), "refresh_token": a.RefreshToken,
		"token_type": "bearer", "expires_in": 3600})
}

func (a *Amazon) listing(w http.ResponseWriter, r *http.Request, raw []byte, seller, sku string) {
	if seller != a.SellerID {
		a.refuse(w, r, "seller %q is not the authorized seller", seller)
		return
	}
	if got := r.URL.Query()["marketplaceIds"]; !slices.Equal(got, []string{a.MarketplaceID}) {
		a.refuse(w, r, "marketplaceIds=%v, want [%s]", got, a.MarketplaceID)
		return
	}
	body, ok := a.jsonBody(w, r, raw)
	if !ok {
		return
	}
	if str(body, "productType") == "" {
		a.refuse(w, r, "productType is required")
		return
	}
	switch r.Method {
	case http.MethodPut:
		if req := str(body, "requirements"); req != "LISTING" && req != "LISTING_PRODUCT_ONLY" && req != "LISTING_OFFER_ONLY" {
			a.refuse(w, r, "requirements %q is not LISTING, LISTING_PRODUCT_ONLY or LISTING_OFFER_ONLY", req)
			return
		}
		if str(body, "attributes", "item_name", 0, "value") == "" || str(body, "attributes", "item_name", 0, "marketplace_id") != a.MarketplaceID {
			a.refuse(w, r, "attributes.item_name[0] needs a value and marketplace_id %s", a.MarketplaceID)
			return
		}
		if offer, has := body["attributes"].(map[string]any)["purchasable_offer"]; has {
			price := str(offer, 0, "our_price", 0, "schedule", 0, "value_with_tax")
			if _, err := strconv.ParseFloat(price, 64); err != nil || str(offer, 0, "currency") == "" {
				a.refuse(w, r, "purchasable_offer needs currency and our_price[0].schedule[0].value_with_tax as a number")
				return
			}
		}
	case http.MethodPatch:
		patches, _ := body["patches"].([]any)
		if len(patches) == 0 {
			a.refuse(w, r, "patches is required")
			return
		}
		for i := range patches {
			op, path := str(patches, i, "op"), str(patches, i, "path")
			if (op != "add" && op != "replace" && op != "delete") || !strings.HasPrefix(path, "/attributes/") {
				a.refuse(w, r, "patches[%d]: op %q path %q", i, op, path)
				return
			}
			if path == "/attributes/fulfillment_availability" {
				q, err := strconv.Atoi(str(patches, i, "value", 0, "quantity"))
				if err != nil || q < 0 || str(patches, i, "value", 0, "fulfillment_channel_code") == "" {
					a.refuse(w, r, "fulfillment_availability needs fulfillment_channel_code and a quantity >= 0")
					return
				}
			}
		}
	default:
		a.refuse(w, r, "listings items take PUT or PATCH here")
		return
	}
	if !a.accept(w, r, body) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sku": sku, "status": "ACCEPTED", "submissionId": fmt.Sprintf("sub-%d", time.Now().UnixNano()), "issues": []any{}})
}

func (a *Amazon) confirmShipment(w http.ResponseWriter, r *http.Request, raw []byte) {
	body, ok := a.jsonBody(w, r, raw)
	if !ok {
		return
	}
	pkg := body["packageDetail"]
	if str(body, "marketplaceId") != a.MarketplaceID {
		a.refuse(w, r, "marketplaceId %q, want %s", str(body, "marketplaceId"), a.MarketplaceID)
		return
	}
	if str(pkg, "packageReferenceId") == "" || str(pkg, "carrierCode") == "" {
		a.refuse(w, r, "packageDetail needs packageReferenceId and carrierCode")
		return
	}
	if _, err := time.Parse(time.RFC3339, str(pkg, "shipDate")); err != nil {
		a.refuse(w, r, "packageDetail.shipDate %q is not ISO 8601", str(pkg, "shipDate"))
		return
	}
	if str(pkg, "orderItems", 0, "orderItemId") == "" || str(pkg, "orderItems", 0, "quantity") == "" {
		a.refuse(w, r, "packageDetail.orderItems needs orderItemId and quantity")
		return
	}
	if a.accept(w, r, body) {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *Amazon) getOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("MarketplaceIds") != a.MarketplaceID {
		a.refuse(w, r, "MarketplaceIds=%q, want %s", q.Get("MarketplaceIds"), a.MarketplaceID)
		return
	}
	offset := 0
	var after time.Time
	if tok := q.Get("NextToken"); tok != "" {
		var gen int
		var sec int64
		if _, err := fmt.Sscanf(tok, "next-%d-%d-%d", &gen, &offset, &sec); err != nil {
			a.refuse(w, r, "NextToken %q is not one we gave", tok)
			return
		}
		a.mu.Lock()
		expired := gen != a.tokenGen
		if expired {
			a.expiredTokens++
		}
		a.mu.Unlock()
		if expired {
			writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []map[string]string{{"code": "InvalidInput", "message": "Invalid Input: NextToken has expired"}}})
			return
		}
		after = time.Unix(sec, 0)
	} else {
		t, err := time.Parse(time.RFC3339, q.Get("CreatedAfter"))
		if err != nil {
			a.refuse(w, r, "CreatedAfter %q is not ISO 8601 (or NextToken is missing)", q.Get("CreatedAfter"))
			return
		}
		if t.After(time.Now().Add(-2 * time.Minute)) {
			a.refuse(w, r, "CreatedAfter must be no later than two minutes before now")
			return
		}
		after = t
	}
	a.mu.Lock()
	size := a.PageSize
	page := offset/size + 1
	fail := a.failPages[page] > 0
	if fail {
		a.failPages[page]--
		a.failed++
	}
	a.mu.Unlock()
	if fail {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []map[string]string{{"code": "ServiceUnavailable", "message": "injected: page " + strconv.Itoa(page)}}})
		return
	}
	if !a.accept(w, r, nil) {
		return
	}
	a.mu.Lock()
	var match []AmazonOrder
	for _, o := range a.orders {
		if !o.Purchased.Before(after) {
			match = append(match, o)
		}
	}
	gen := a.tokenGen
	a.mu.Unlock()
	end := min(offset+size, len(match))
	orders := []map[string]any{}
	for _, o := range match[min(offset, end):end] {
		orders = append(orders, map[string]any{"AmazonOrderId": o.ID, "PurchaseDate": o.Purchased.UTC().Format(time.RFC3339),
			"LastUpdateDate": o.Purchased.UTC().Format(time.RFC3339), "OrderStatus": o.Status, "MarketplaceId": a.MarketplaceID,
			"OrderTotal": map[string]string{"CurrencyCode": o.Currency, "Amount": o.Amount}})
	}
	payload := map[string]any{"Orders": orders, "CreatedBefore": time.Now().Add(-2 * time.Minute).UTC().Format(time.RFC3339)}
	if end < len(match) {
		payload["NextToken"] = fmt.Sprintf("next-%d-%d-%d", gen, end, after.Unix())
	}
	writeJSON(w, http.StatusOK, map[string]any{"payload": payload})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
