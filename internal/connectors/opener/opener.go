// Package opener opens connector adapters for ConnectorConfigs, with their
// credentials read from Vault, and keeps them open while their settings
// stay the same, so access tokens and offer lookups are reused.
package opener

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/ss3dev/integration-operator/internal/connectors"
	"github.com/ss3dev/integration-operator/internal/connectors/registry"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// maxConnectors bounds the credentials kept in memory.
const maxConnectors = 10_000

// Opener keeps one adapter per connector.
type Opener struct {
	vault  *vault.Client
	client *http.Client

	mu       sync.Mutex
	adapters map[uuid.UUID]opened
	creds    *expirable.LRU[uuid.UUID, connectors.Credentials]
}

type opened struct {
	digest  [32]byte
	adapter connectors.Adapter
}

// New makes an Opener whose adapters call out with client and re-read
// their credentials from Vault after ttl.
func New(v *vault.Client, client *http.Client, ttl time.Duration) *Opener {
	return &Opener{vault: v, client: client, adapters: map[uuid.UUID]opened{},
		creds: expirable.NewLRU[uuid.UUID, connectors.Credentials](maxConnectors, nil, ttl)}
}

// Open returns the adapter for a connector, opening it anew when its type
// or settings changed.
func (o *Opener) Open(id uuid.UUID, storeID, connectorType string, settings json.RawMessage) (connectors.Adapter, error) {
	digest := sha256.Sum256([]byte(storeID + "\x00" + connectorType + "\x00" + string(settings)))
	o.mu.Lock()
	defer o.mu.Unlock()
	if a, ok := o.adapters[id]; ok && a.digest == digest {
		return a.adapter, nil
	}
	reg, ok := registry.Lookup(connectorType)
	if !ok {
		return nil, fmt.Errorf("no adapter for connector type %q", connectorType)
	}
	a, err := reg.New(connectors.Config{ID: id, StoreID: storeID, Settings: settings, HTTPClient: o.client,
		Credentials: func(ctx context.Context) (connectors.Credentials, error) {
			return o.credentials(ctx, id, reg.Credentials)
		}})
	if err != nil {
		return nil, err
	}
	o.adapters[id] = opened{digest: digest, adapter: a}
	return a, nil
}

// credentials reads the connector's secrets from Vault, at most once per
// ttl; a required one that is missing is an error (the manager has not
// written it yet), never an empty credential sent to the marketplace.
func (o *Opener) credentials(ctx context.Context, id uuid.UUID, required []string) (connectors.Credentials, error) {
	if creds, ok := o.creds.Get(id); ok {
		return creds, nil
	}
	values := map[string]string{}
	for _, name := range []string{connectors.CredentialAPIKey, connectors.CredentialAPISecret, connectors.CredentialRefreshToken} {
		data, _, err := o.vault.Get(ctx, "connector/"+id.String()+"/"+name)
		if errors.Is(err, vault.ErrNotFound) {
			continue // not every type needs every credential
		}
		if err != nil {
			return connectors.Credentials{}, fmt.Errorf("reading connector credentials from Vault: %w", err)
		}
		values[name] = data["value"]
	}
	for _, name := range required {
		if values[name] == "" {
			return connectors.Credentials{}, fmt.Errorf("the connector's %s is not in Vault (yet): see the ConnectorConfig's CredentialsSynced condition", name)
		}
	}
	creds := connectors.Credentials{APIKey: values[connectors.CredentialAPIKey], APISecret: values[connectors.CredentialAPISecret],
		RefreshToken: values[connectors.CredentialRefreshToken]}
	o.creds.Add(id, creds)
	return creds, nil
}
