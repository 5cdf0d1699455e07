// Package registry lists the connector adapters by type. A new adapter is a
// package with a Registration function and one line below.
package registry

import (
	"slices"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/amazon"
	"github.com/ss3dev/integration-operator/internal/connectors/ebay"
	"github.com/ss3dev/integration-operator/internal/connectors/googleshopping"
	"github.com/ss3dev/integration-operator/internal/connectors/payfast"
	"github.com/ss3dev/integration-operator/internal/connectors/stripe"
)

func all() []connectors.Registration {
	return []connectors.Registration{
		amazon.Registration(),
		ebay.Registration(),
		googleshopping.Registration(),
		stripe.Registration(),
		payfast.Registration(),
	}
}

// Lookup finds the adapter for a connector type.
func Lookup(connectorType string) (connectors.Registration, bool) {
	i := slices.IndexFunc(all(), func(r connectors.Registration) bool { return r.Type == connectorType })
	if i < 0 {
		return connectors.Registration{}, false
	}
	return all()[i], true
}

// Types lists the connector types with an adapter.
func Types() []string {
	var types []string
	for _, r := range all() {
		types = append(types, r.Type)
	}
	return types
}

// PollingTypes lists the connector types whose adapters poll.
func PollingTypes() []string {
	var types []string
	for _, r := range all() {
		if r.Polls {
			types = append(types, r.Type)
		}
	}
	return types
}
