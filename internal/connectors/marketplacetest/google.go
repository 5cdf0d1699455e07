package marketplacetest

import (
	"crypto/rsa"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Google stands in for Google's OAuth token endpoint (service-account JWT
// assertions) and the Merchant API's product inputs.
type Google struct {
	*Server
	ClientEmail string
	KeyID       string
	PublicKey   *rsa.PublicKey
	AccountID   string
	DataSource  string
}

// GoogleContentScope is the scope the Merchant API needs.
const GoogleContentScope = "https://www.googleapis.com/auth/content"

// NewGoogle starts the stand-in; Close it when done.
func NewGoogle(clientEmail, keyID string, key *rsa.PublicKey, accountID, dataSourceID string) *Google {
	g := &Google{ClientEmail: clientEmail, KeyID: keyID, PublicKey: key, AccountID: accountID,
		DataSource: "accounts/" + accountID + "/dataSources/" + dataSourceID}
	g.Server = newServer(g.serve)
	return g
}

var (
	insertPath = regexp.MustCompile(`^/products/v1/accounts/([0-9]+)/productInputs:insert$`)
	patchPath  = regexp.MustCompile(`^/products/v1/accounts/([0-9]+)/productInputs/([^/~]+)~([^/~]+)~([^/]+)$`)
)

func (g *Google) serve(s *Server, w http.ResponseWriter, r *http.Request, body []byte) {
	if r.URL.Path == "/token" {
		g.token(w, r, body)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !s.authorized(tok) {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"code": 401, "status": "UNAUTHENTICATED"}})
		s.problem(r.URL.Path + ": no valid bearer token")
		return
	}
	if r.URL.Query().Get("dataSource") != g.DataSource {
		s.refuse(w, r, "dataSource %q, want %s", r.URL.Query().Get("dataSource"), g.DataSource)
		return
	}
	var account string
	var handle func(http.ResponseWriter, *http.Request, map[string]any, string)
	switch {
	case r.Method == http.MethodPost && insertPath.MatchString(r.URL.Path):
		account, handle = insertPath.FindStringSubmatch(r.URL.Path)[1], g.insert
	case r.Method == http.MethodPatch && patchPath.MatchString(r.URL.Path):
		account, handle = patchPath.FindStringSubmatch(r.URL.Path)[1], g.patch
	default:
		s.refuse(w, r, "no such Merchant API method")
		return
	}
	if account != g.AccountID {
		s.refuse(w, r, "account %s is not %s", account, g.AccountID)
		return
	}
	if parsed, ok := g.jsonBody(w, r, body); ok {
		handle(w, r, parsed, account)
	}
}

func (g *Google) token(w http.ResponseWriter, r *http.Request, body []byte) {
	f, ok := g.form(w, r, body)
	if !ok {
		return
	}
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || f.Get("assertion") == "" {
		g.refuse(w, r, "want grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer and an assertion; got keys %v", keys(f))
		return
	}
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(f.Get("assertion"), claims, func(t *jwt.Token) (any, error) {
		if g.KeyID != "" && t.Header["kid"] != g.KeyID {
			return nil, jwt.ErrTokenUnverifiable
		}
		return g.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience("http://"+r.Host+"/token"), jwt.WithIssuer(g.ClientEmail),
		jwt.WithIssuedAt(), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
		g.problem("token: assertion refused: " + err.Error())
		return
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if exp.Sub(iat.Time) > time.Hour || claims["scope"] != GoogleContentScope {
		g.refuse(w, r, "assertion must live at most an hour and ask for scope %s (got %v)", GoogleContentScope, claims["scope"])
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": g.issue(time.Hour), "expires_in": 3599, "token_type": "Bearer"})
}

var googleConditions = map[string]bool{"NEW": true, "USED": true, "REFURBISHED": true}
var googleAvailability = map[string]bool{"IN_STOCK": true, "OUT_OF_STOCK": true, "PREORDER": true, "LIMITED_AVAILABILITY": true, "BACKORDER": true}

// attributesOK checks the product attributes' types and enums.
func (g *Google) attributesOK(w http.ResponseWriter, r *http.Request, attrs any) bool {
	if _, ok := attrs.(map[string]any); !ok {
		g.refuse(w, r, "productAttributes is required")
		return false
	}
	if c := str(attrs, "condition"); c != "" && !googleConditions[c] {
		g.refuse(w, r, "condition %q is not NEW, USED or REFURBISHED", c)
		return false
	}
	if a := str(attrs, "availability"); a != "" && !googleAvailability[a] {
		g.refuse(w, r, "availability %q is not an Availability value", a)
		return false
	}
	if p, has := attrs.(map[string]any)["price"]; has {
		if !regexp.MustCompile(`^[0-9]+$`).MatchString(str(p, "amountMicros")) || len(str(p, "currencyCode")) != 3 {
			g.refuse(w, r, "price needs amountMicros (an int64 as a string) and a three-letter currencyCode")
			return false
		}
	}
	return true
}

func (g *Google) insert(w http.ResponseWriter, r *http.Request, body map[string]any, account string) {
	for _, f := range []string{"offerId", "contentLanguage", "feedLabel"} {
		if str(body, f) == "" {
			g.refuse(w, r, "%s is required", f)
			return
		}
	}
	if !g.attributesOK(w, r, body["productAttributes"]) {
		return
	}
	if g.accept(w, r, body) {
		body["name"] = "accounts/" + account + "/productInputs/" + str(body, "contentLanguage") + "~" + str(body, "feedLabel") + "~" + str(body, "offerId")
		writeJSON(w, http.StatusOK, body)
	}
}

func (g *Google) patch(w http.ResponseWriter, r *http.Request, body map[string]any, _ string) {
	mask := r.URL.Query().Get("updateMask")
	if mask == "" {
		g.refuse(w, r, "updateMask is required")
		return
	}
	attrs, _ := body["productAttributes"].(map[string]any)
	for _, field := range strings.Split(mask, ",") {
		name, ok := strings.CutPrefix(field, "productAttributes.")
		if _, present := attrs[name]; !ok || !present {
			g.refuse(w, r, "updateMask names %s, which the body does not set", field)
			return
		}
	}
	if !g.attributesOK(w, r, attrs) {
		return
	}
	if g.accept(w, r, body) {
		writeJSON(w, http.StatusOK, body)
	}
}
