// Package marketplacetest runs local stand-ins for the marketplaces' APIs
// (Amazon SP-API with Login with Amazon, eBay with its OAuth, Google's
// Merchant API with service-account JWTs) that check each request's path,
// method, headers, authentication and body fields as strictly as the real
// ones, record what they accepted, and can be told to fail. Tests only.
package marketplacetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Call is one accepted API request.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   map[string]any
}

// Server is the shared machinery of the stand-ins.
type Server struct {
	*httptest.Server

	mu          sync.Mutex
	calls       []Call
	problems    []string
	tokens      map[string]time.Time // issued access token -> expiry
	exchanges   int
	failNext    int
	failStatus  int
	failBody    []byte
	failed      int
	unavailable bool
	delay       time.Duration
}

func newServer(handler func(s *Server, w http.ResponseWriter, r *http.Request, body []byte)) *Server {
	s := &Server{tokens: map[string]time.Time{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		delay, down := s.delay, s.unavailable
		s.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		if down {
			http.Error(w, `{"errors":[{"code":"ServiceUnavailable"}]}`, http.StatusServiceUnavailable)
			return
		}
		handler(s, w, r, body)
	}))
	return s
}

// Calls returns the API requests accepted so far (token exchanges excluded).
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Problems lists the requests refused as malformed, with why.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// TokenExchanges counts successful token grants.
func (s *Server) TokenExchanges() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exchanges
}

// FailNextWith makes the next n API calls answer status with body (any
// bytes, as a hostile or broken marketplace might send).
func (s *Server) FailNextWith(n, status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failStatus, s.failBody = n, status, body
}

// Failed counts the API calls answered with an injected failure.
func (s *Server) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// FailNext makes the next n API calls answer status.
func (s *Server) FailNext(n, status int) { s.FailNextWith(n, status, nil) }

// SetUnavailable makes every request answer 503 until turned off.
func (s *Server) SetUnavailable(down bool) {
	s.mu.Lock()
	s.unavailable = down
	s.mu.Unlock()
}

// SetDelay makes every request wait d before being answered.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// problem records a request the real API would not have taken.
func (s *Server) problem(msg string) {
	s.mu.Lock()
	s.problems = append(s.problems, msg)
	s.mu.Unlock()
}

// refuse records a malformed request and answers 400.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, format string, args ...any) {
	msg := fmt.Sprintf("%s %s: %s", r.Method, r.URL.Path, fmt.Sprintf(format, args...))
	s.problem(msg)
	writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []map[string]string{{"code": "InvalidInput", "message": msg}}})
}

// issue grants a new access token.
func (s *Server) issue(ttl time.Duration) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := "tok-" + hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(ttl)
	s.exchanges++
	s.mu.Unlock()
	return tok
}

// authorized checks an access token we issued and that has not expired.
func (s *Server) authorized(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	return ok && time.Now().Before(exp)
}

// accept records an API call, or fails it if told to; it reports whether
// the handler should go on.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, body map[string]any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		s.failed++
		body := s.failBody
		if body == nil {
			body = []byte(`{"errors":[{"code":"InjectedFailure"}]}`)
		}
		w.WriteHeader(s.failStatus)
		_, _ = w.Write(body)
		return false
	}
	s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: body})
	return true
}

// jsonBody decodes a JSON request body, refusing a missing content type or
// malformed JSON.
func (s *Server) jsonBody(w http.ResponseWriter, r *http.Request, body []byte) (map[string]any, bool) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		s.refuse(w, r, "Content-Type is %q, want application/json", ct)
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		s.refuse(w, r, "body is not a JSON object: %v", err)
		return nil, false
	}
	return m, true
}

// form parses a form-encoded token request.
func (s *Server) form(w http.ResponseWriter, r *http.Request, body []byte) (url.Values, bool) {
	if r.Method != http.MethodPost {
		s.refuse(w, r, "token requests are POSTs")
		return nil, false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.refuse(w, r, "Content-Type is %q, want application/x-www-form-urlencoded", ct)
		return nil, false
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		s.refuse(w, r, "form: %v", err)
		return nil, false
	}
	return v, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// str digs a string out of decoded JSON by keys and indexes.
func str(v any, path ...any) string {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return ""
			}
			v = a[k]
		}
	}
	switch t := v.(type) {
	case string:
		return t
	case float64, bool:
		return fmt.Sprint(t)
	case json.Number:
		return t.String()
	}
	return ""
}
