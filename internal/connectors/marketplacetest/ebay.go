package marketplacetest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EbayInventoryScope is the scope the Inventory API needs.
const EbayInventoryScope = "https://api.ebay.com/oauth/api_scope/sell.inventory"

// Ebay stands in for eBay's OAuth token endpoint and Inventory API.
type Ebay struct {
	*Server
	ClientID, ClientSecret, RefreshToken string

	offers  map[string][]string // sku -> offer ids
	refused map[string]int      // sku -> status the bulk update answers for it
}

// NewEbay starts the stand-in; Close it when done.
func NewEbay(clientID, clientSecret, refreshToken string) *Ebay {
	e := &Ebay{ClientID: clientID, ClientSecret: clientSecret, RefreshToken: refreshToken, offers: map[string][]string{}, refused: map[string]int{}}
	e.Server = newServer(e.serve)
	return e
}

// AddOffer publishes an offer for sku.
func (e *Ebay) AddOffer(sku, offerID string) {
	e.mu.Lock()
	e.offers[sku] = append(e.offers[sku], offerID)
	e.mu.Unlock()
}

// RefuseSKU makes bulk updates answer status for sku.
func (e *Ebay) RefuseSKU(sku string, status int) {
	e.mu.Lock()
	e.refused[sku] = status
	e.mu.Unlock()
}

func (e *Ebay) serve(s *Server, w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path == "/identity/v1/oauth2/token" {
		e.token(w, r, body)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !s.authorized(tok) {
		s.refuse(w, r, "Authorization must be Bearer <user access token>")
		return
	}
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/sell/inventory/v1/inventory_item/"):
		e.putItem(w, r, body)
	case r.Method == http.MethodGet && r.URL.Path == "/sell/inventory/v1/offer":
		e.getOffers(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/sell/inventory/v1/bulk_update_price_quantity":
		e.bulk(w, r, body)
	default:
		s.refuse(w, r, "no such Inventory API operation")
	}
}

func (e *Ebay) token(w http.ResponseWriter, r *http.Request, body []byte) {
	f, ok := e.form(w, r, body)
	if !ok {
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		e.refuse(w, r, "eBay wants the client credentials as HTTP Basic authentication")
		return
	}
	if f.Get("grant_type") != "refresh_token" || f.Get("refresh_token") == "" {
		e.refuse(w, r, "want grant_type=refresh_token and refresh_token; got keys %v", keys(f))
		return
	}
	if !strings.Contains(" "+f.Get("scope")+" ", " "+EbayInventoryScope+" ") {
		e.refuse(w, r, "scope %q must include %s", f.Get("scope"), EbayInventoryScope)
		return
	}
	if id != e.ClientID || secret != e.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "client authentication failed"})
		return
	}
	if f.Get("refresh_token") != e.RefreshToken {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "the provided authorization refresh token is invalid"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": e.issue(2 * time.Hour), "expires_in": 7200, "token_type": "User Access Token"})
}

var ebayConditions = map[string]bool{"NEW": true, "LIKE_NEW": true, "NEW_OTHER": true, "SELLER_REFURBISHED": true, "USED_EXCELLENT": true,
	"USED_VERY_GOOD": true, "USED_GOOD": true, "USED_ACCEPTABLE": true, "FOR_PARTS_OR_NOT_WORKING": true}

func (e *Ebay) putItem(w http.ResponseWriter, r *http.Request, raw []byte) {
	if r.Header.Get("Content-Language") == "" {
		e.refuse(w, r, "Content-Language is required (25709)")
		return
	}
	body, ok := e.jsonBody(w, r, raw)
	if !ok {
		return
	}
	if str(body, "product", "title") == "" {
		e.refuse(w, r, "product.title is required to publish")
		return
	}
	if c := str(body, "condition"); !ebayConditions[c] {
		e.refuse(w, r, "condition %q is not a ConditionEnum value", c)
		return
	}
	if a, has := body["availability"]; has {
		if _, err := strconv.Atoi(str(a, "shipToLocationAvailability", "quantity")); err != nil {
			e.refuse(w, r, "availability.shipToLocationAvailability.quantity must be an integer")
			return
		}
	}
	if e.accept(w, r, body) {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (e *Ebay) getOffers(w http.ResponseWriter, r *http.Request) {
	sku := r.URL.Query().Get("sku")
	if sku == "" {
		e.refuse(w, r, "sku is required")
		return
	}
	if !e.accept(w, r, nil) {
		return
	}
	e.mu.Lock()
	ids := e.offers[sku]
	e.mu.Unlock()
	if len(ids) == 0 {
		writeJSON(w, http.StatusNotFound, map[string]any{"errors": []map[string]any{{"errorId": 25713, "message": "This Offer is not available."}}})
		return
	}
	var offers []map[string]string
	for _, id := range ids {
		offers = append(offers, map[string]string{"offerId": id, "sku": sku, "marketplaceId": r.URL.Query().Get("marketplace_id")})
	}
	writeJSON(w, http.StatusOK, map[string]any{"offers": offers, "total": len(offers)})
}

func (e *Ebay) bulk(w http.ResponseWriter, r *http.Request, raw []byte) {
	body, ok := e.jsonBody(w, r, raw)
	if !ok {
		return
	}
	reqs, _ := body["requests"].([]any)
	if len(reqs) == 0 || len(reqs) > 25 {
		e.refuse(w, r, "requests must hold 1 to 25 items, has %d", len(reqs))
		return
	}
	seen := map[string]bool{}
	for i := range reqs {
		sku := str(reqs, i, "sku")
		_, hasQty := reqs[i].(map[string]any)["shipToLocationAvailability"]
		offers, _ := reqs[i].(map[string]any)["offers"].([]any)
		if sku == "" || seen[sku] || (!hasQty && len(offers) == 0) {
			e.refuse(w, r, "requests[%d] needs a unique sku and shipToLocationAvailability or offers", i)
			return
		}
		seen[sku] = true
		for j := range offers {
			if str(offers, j, "offerId") == "" || (str(offers, j, "price", "value") == "" && str(offers, j, "availableQuantity") == "") {
				e.refuse(w, r, "requests[%d].offers[%d] needs offerId and price or availableQuantity", i, j)
				return
			}
			if v := str(offers, j, "price", "value"); v != "" {
				if _, err := strconv.ParseFloat(v, 64); err != nil || str(offers, j, "price", "currency") == "" {
					e.refuse(w, r, "requests[%d].offers[%d].price needs a decimal value and a currency", i, j)
					return
				}
			}
		}
	}
	if !e.accept(w, r, body) {
		return
	}
	var responses []map[string]any
	e.mu.Lock()
	for i := range reqs {
		sku := str(reqs, i, "sku")
		resp := map[string]any{"sku": sku, "statusCode": 200}
		if status := e.refused[sku]; status != 0 {
			resp["statusCode"] = status
			resp["errors"] = []map[string]any{{"errorId": 25001, "message": "A system error has occurred"}}
		}
		responses = append(responses, resp)
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"responses": responses})
}

// SKUs lists the SKUs named by the accepted calls' paths and bodies, in order.
func SKUs(calls []Call) []string {
	var out []string
	for _, c := range calls {
		if sku, ok := strings.CutPrefix(c.Path, "/sell/inventory/v1/inventory_item/"); ok {
			s, _ := url.PathUnescape(sku)
			out = append(out, s)
		}
		reqs, _ := c.Body["requests"].([]any)
		for i := range reqs {
			out = append(out, str(reqs, i, "sku"))
		}
	}
	return out
}
