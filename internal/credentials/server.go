package credentials

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/ss3dev/integration-operator/internal/store"
)

// Response headers for gateways' forward-auth (nginx auth_request, Envoy
// ext_authz, Traefik ForwardAuth): the status code decides, these carry who.
const (
	HeaderStoreID      = "X-SS3-Store-Id"
	HeaderScopes       = "X-SS3-Scopes"
	HeaderClientID     = "X-SS3-Client-Id"
	HeaderCredentialID = "X-SS3-Credential-Id"
)

// Reasons in refusals. One code covers every wrong part of a credential,
// so a refusal never tells which part was wrong.
const (
	ReasonMissing           = "missing_credential"
	ReasonInvalid           = "invalid_credential"
	ReasonInsufficientScope = "insufficient_scope"
	ReasonUnavailable       = "temporarily_unavailable"
	ReasonThrottled         = "throttled"
	ReasonBadScope          = "invalid_required_scope"
)

// maxCredentialHeader bounds what is parsed at all: anything longer is refused cheaply.
const maxCredentialHeader = 2048

// Server is the credentials API's HTTP face.
type Server struct {
	Validator *Validator
	Tokens    *Tokens
	Metrics   *Metrics
	Log       logr.Logger
	// RequiredScope says where the gateway puts the scopes a route requires.
	RequiredScope RequiredScopeSource
}

// Handler routes the API: validate (also under a path prefix, as Envoy's
// ext_authz appends the original path), the OAuth token endpoint, and probes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/credentials/validate", s.validate)
	mux.HandleFunc("/credentials/validate/", s.validate)
	mux.HandleFunc("/oauth/token", s.token)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ready, state := s.Validator.Health(r.Context())
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(state + "\n"))
	})
	return mux
}

type validResponse struct {
	StoreID string   `json:"storeId"`
	Scopes  []string `json:"scopes"`
	Valid   bool     `json:"valid"`
}

type invalidResponse struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason"`
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p, outcome, err := s.authenticate(r)
	defer func() {
		s.Metrics.Validations.WithLabelValues(string(outcome)).Inc()
		s.Metrics.Latency.Observe(time.Since(start).Seconds())
	}()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch {
	case err != nil:
		outcome = "error"
		s.Log.Error(err, "validation failed for want of the database")
		writeJSON(w, http.StatusServiceUnavailable, invalidResponse{Reason: ReasonUnavailable})
		return
	case outcome == OutcomeThrottled:
		// Over this client id's bcrypt budget: said plainly, so the holder
		// knows to retry rather than to suspect the key.
		s.setRetryAfter(h)
		writeJSON(w, http.StatusTooManyRequests, invalidResponse{Reason: ReasonThrottled})
		return
	case outcome == "":
		outcome = OutcomeMalformed
		h.Set("WWW-Authenticate", `Bearer realm="ss3"`)
		writeJSON(w, http.StatusUnauthorized, invalidResponse{Reason: ReasonMissing})
		return
	case outcome != OutcomeValid:
		h.Set("WWW-Authenticate", `Bearer realm="ss3", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, invalidResponse{Reason: ReasonInvalid})
		return
	}
	required, err := s.RequiredScope.required(r)
	if err != nil {
		outcome = "bad_required_scope"
		writeJSON(w, http.StatusBadRequest, invalidResponse{Reason: ReasonBadScope})
		return
	}
	if missing := missingScope(p.Scopes, required); missing != "" {
		outcome = "insufficient_scope"
		h.Set("WWW-Authenticate", `Bearer realm="ss3", error="insufficient_scope", scope="`+strings.Join(required, " ")+`"`)
		writeJSON(w, http.StatusForbidden, invalidResponse{Reason: ReasonInsufficientScope})
		return
	}
	h.Set(HeaderStoreID, p.StoreID)
	h.Set(HeaderScopes, strings.Join(p.Scopes, " "))
	h.Set(HeaderClientID, p.ClientID)
	h.Set(HeaderCredentialID, p.CredentialID.String())
	writeJSON(w, http.StatusOK, validResponse{StoreID: p.StoreID, Scopes: p.Scopes, Valid: true})
}

// authenticate finds the credential in the request and validates it. An
// empty outcome means none was presented.
func (s *Server) authenticate(r *http.Request) (Principal, Outcome, error) {
	auth := r.Header.Get("Authorization")
	apiKey := r.Header.Get("X-API-Key")
	if len(auth) > maxCredentialHeader || len(apiKey) > maxCredentialHeader {
		return Principal{}, OutcomeMalformed, nil
	}
	switch {
	case apiKey != "":
		return s.apiKey(r, apiKey)
	case hasScheme(auth, "Bearer"):
		cred := strings.TrimSpace(auth[len("Bearer "):])
		if strings.HasPrefix(cred, APIKeyClientPrefix) {
			return s.apiKey(r, cred)
		}
		return s.accessToken(r, cred)
	case hasScheme(auth, "Basic"):
		id, secret, ok := basicCredentials(auth)
		if !ok || !strings.HasPrefix(id, OAuthClientPrefix) || !ValidClientID(id) || !ValidClientSecret(secret) {
			return Principal{}, OutcomeMalformed, nil
		}
		return s.Validator.ValidateSecret(r.Context(), id, secret)
	}
	return Principal{}, "", nil
}

func (s *Server) apiKey(r *http.Request, key string) (Principal, Outcome, error) {
	id, secret, ok := ParseAPIKey(key)
	if !ok {
		return Principal{}, OutcomeMalformed, nil
	}
	return s.Validator.ValidateSecret(r.Context(), id, secret)
}

// accessToken accepts a token from /oauth/token while its client is still
// valid; its scopes narrow to those the client holds now.
func (s *Server) accessToken(r *http.Request, token string) (Principal, Outcome, error) {
	if s.Tokens == nil {
		return Principal{}, OutcomeBadToken, nil
	}
	claims, err := s.Tokens.Verify(token)
	if err != nil {
		return Principal{}, OutcomeBadToken, nil
	}
	p, outcome, err := s.Validator.principalForToken(r.Context(), claims)
	if err != nil || outcome != OutcomeValid {
		return p, outcome, err
	}
	var scopes []string
	for _, sc := range claims.scopes {
		if hasScope(p.Scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	p.Scopes = scopes
	return p, OutcomeValid, nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// token is the client credentials grant (RFC 6749 section 4.4).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	outcome := "issued"
	defer func() { s.Metrics.Tokens.WithLabelValues(outcome).Inc() }()
	fail := func(status int, code, description string) {
		outcome = code
		writeJSON(w, status, oauthError{Error: code, Description: description})
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if s.Tokens == nil {
		fail(http.StatusNotFound, "unsupported_grant_type", "this deployment issues no tokens")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "the body must be a form of at most 4 KiB")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		fail(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
		return
	}
	id, secret, basic := r.BasicAuth()
	formID, formSecret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	switch {
	case basic && (formID != "" || formSecret != ""):
		fail(http.StatusBadRequest, "invalid_request", "authenticate the client one way only")
		return
	case !basic:
		id, secret = formID, formSecret
	}
	invalidClient := func() {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="ss3"`)
		}
		fail(http.StatusUnauthorized, "invalid_client", "client authentication failed")
	}
	if !strings.HasPrefix(id, OAuthClientPrefix) || !ValidClientID(id) || !ValidClientSecret(secret) {
		invalidClient()
		return
	}
	p, result, err := s.Validator.ValidateSecret(r.Context(), id, secret)
	if err != nil {
		s.Log.Error(err, "token request failed for want of the database")
		fail(http.StatusServiceUnavailable, "temporarily_unavailable", "")
		return
	}
	if result == OutcomeThrottled {
		s.setRetryAfter(w.Header())
		fail(http.StatusTooManyRequests, "slow_down", "too many new secrets tried for this client; retry later")
		return
	}
	if result != OutcomeValid || p.Type != store.CredentialTypeOAuthClient {
		invalidClient()
		return
	}
	scopes := p.Scopes
	if requested := strings.Fields(r.PostForm.Get("scope")); len(requested) > 0 {
		for _, sc := range requested {
			if !hasScope(p.Scopes, sc) {
				fail(http.StatusBadRequest, "invalid_scope", "scope "+strconv.Quote(sc)+" is not granted to this client")
				return
			}
		}
		scopes = requested
	}
	token, ttl, err := s.Tokens.Issue(p, scopes)
	if err != nil {
		s.Log.Error(err, "signing a token failed")
		fail(http.StatusInternalServerError, "server_error", "")
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: token, TokenType: "Bearer",
		ExpiresIn: int(ttl.Seconds()), Scope: strings.Join(scopes, " ")})
}

func (s *Server) setRetryAfter(h http.Header) {
	h.Set("Retry-After", strconv.Itoa(int(s.Validator.RetryAfter().Round(time.Second).Seconds())))
}

func hasScheme(auth, scheme string) bool {
	return len(auth) > len(scheme) && auth[len(scheme)] == ' ' && strings.EqualFold(auth[:len(scheme)], scheme)
}

func basicCredentials(auth string) (id, secret string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[len("Basic "):]))
	if err != nil {
		return "", "", false
	}
	id, secret, ok = strings.Cut(string(raw), ":")
	return id, secret, ok
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// Authenticate validates the credential a request carries, as
// /credentials/validate does, for other endpoints served beside it (the
// live event stream). status is 200 for a valid credential, else the
// answer to give: 401, 429 (throttled) or 503 (the database is down).
func (s *Server) Authenticate(r *http.Request) (p Principal, status int) {
	p, outcome, err := s.authenticate(r)
	switch {
	case err != nil:
		return p, http.StatusServiceUnavailable
	case outcome == OutcomeThrottled:
		return p, http.StatusTooManyRequests
	case outcome != OutcomeValid:
		return p, http.StatusUnauthorized
	}
	return p, http.StatusOK
}
