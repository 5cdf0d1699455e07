package credentials

import (
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// RequiredScopeSource says where a validation's required scopes come from:
// only from what the gateway's own configuration fixes, never from anything
// the client can send. By default that is the `scope` query parameters of
// the auth request's URL (nginx's auth_request proxy_pass, Traefik's
// forwardAuth address). Envoy's ext_authz appends the client's own path and
// query to the check request, so there set IgnoreQuery and name a header
// the gateway itself sets (and strips from the client's request).
type RequiredScopeSource struct {
	// Header, when set, is a header whose value is also required scopes.
	Header string
	// IgnoreQuery ignores the query string (it is the client's behind Envoy).
	IgnoreQuery bool
}

const maxRequiredScopes = 16

var scopePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}:[a-z][a-z0-9_-]{0,31}$`)

var errMalformedScope = errors.New("a required scope must look like resource:action (lower case), at most 16 of them")

// required returns every scope the request requires: each `scope`
// parameter and each header value, space-separated lists included. Extra
// sources can only add requirements, never remove the gateway's.
func (s RequiredScopeSource) required(r *http.Request) ([]string, error) {
	var values []string
	if !s.IgnoreQuery {
		values = append(values, r.URL.Query()["scope"]...)
	}
	if s.Header != "" {
		values = append(values, r.Header.Values(s.Header)...)
	}
	var scopes []string
	for _, v := range values {
		for _, sc := range splitScopes(v) {
			if !scopePattern.MatchString(sc) {
				return nil, errMalformedScope
			}
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	if len(scopes) > maxRequiredScopes {
		return nil, errMalformedScope
	}
	return scopes, nil
}

// splitScopes splits a space-separated scope list (RFC 6749 section 3.3);
// commas are accepted too, as proxies join repeated headers with them.
func splitScopes(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}

// missingScope returns the first required scope that held lacks, or "".
func missingScope(held, required []string) string {
	for _, sc := range required {
		if !slices.Contains(held, sc) {
			return sc
		}
	}
	return ""
}
