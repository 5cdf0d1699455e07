package chart_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// An enabled NetworkPolicy with no gateway selector would admit every
// namespace ({} selects all): the chart refuses to render it, saying what
// to set.
func TestNetworkPolicyNeedsAGatewaySelector(t *testing.T) {
	chart := filepath.Join("charts", "integration-operator")
	_, stderr, err := helmRun(t, "template", "io", chart, "--set", "networkPolicy.enabled=true")
	if err == nil || !strings.Contains(stderr, "networkPolicy.gatewayNamespaceSelector") {
		t.Fatalf("rendered with no gateway selector (err %v): %s", err, stderr)
	}
	out := helm(t, "template", "io", chart, "--set", "networkPolicy.enabled=true",
		"--set", "networkPolicy.gatewayNamespaceSelector.matchLabels.team=gateway", "--show-only", "templates/networkpolicy.yaml")
	if !strings.Contains(out, "team: gateway") || strings.Contains(out, "namespaceSelector: {}") {
		t.Fatalf("the policy does not carry the selector given:\n%s", out)
	}
}
