package credentials

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestRequiredScopesComeOnlyFromTheConfiguredSource(t *testing.T) {
	const gatewayHeader = "X-SS3-Required-Scope"
	cases := []struct {
		name   string
		source RequiredScopeSource
		target string
		header map[string]string
		want   []string
		bad    bool
	}{
		{"query, repeated and space-separated", RequiredScopeSource{}, "/v?scope=orders:read&scope=customers:read+catalog:read", nil,
			[]string{"orders:read", "customers:read", "catalog:read"}, false},
		{"a client header is ignored by default", RequiredScopeSource{}, "/v?scope=customers:read",
			map[string]string{"X-Required-Scope": "orders:read", gatewayHeader: "orders:read"}, []string{"customers:read"}, false},
		{"the configured header adds to the query", RequiredScopeSource{Header: gatewayHeader}, "/v?scope=customers:read",
			map[string]string{gatewayHeader: "orders:read, inventory:write"}, []string{"customers:read", "orders:read", "inventory:write"}, false},
		{"behind Envoy the query is the client's", RequiredScopeSource{Header: gatewayHeader, IgnoreQuery: true}, "/v/orders?scope=orders:read",
			map[string]string{gatewayHeader: "customers:read"}, []string{"customers:read"}, false},
		{"malformed", RequiredScopeSource{}, "/v?scope=Orders%0d%0aX:1", nil, nil, true},
		{"none", RequiredScopeSource{}, "/v", nil, nil, false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", tc.target, nil)
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		got, err := tc.source.required(r)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v %v, want %v (error: %v)", tc.name, got, err, tc.want, tc.bad)
		}
	}
}
