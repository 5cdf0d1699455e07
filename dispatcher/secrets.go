package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/ss3dev/integration-operator/internal/vault"
)

// secretCache reads subscriptions' signing secrets from Vault and keeps
// them for a short while, so a delivery costs no Vault round trip.
type secretCache struct {
	vault *vault.Client
	ttl   time.Duration

	mu      sync.Mutex
	entries map[uuid.UUID]cachedSecrets
}

type cachedSecrets struct {
	secrets []string
	fetched time.Time
	// previousUntil: the previous secret is used until then.
	previousUntil time.Time
}

func newSecretCache(v *vault.Client, ttl time.Duration) *secretCache {
	return &secretCache{vault: v, ttl: ttl, entries: map[uuid.UUID]cachedSecrets{}}
}

// get returns the secrets to sign with: the current one, then the previous
// one while its grace period lasts.
func (c *secretCache) get(ctx context.Context, subscriptionID uuid.UUID) ([]string, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[subscriptionID]
	c.mu.Unlock()
	if !ok || now.Sub(e.fetched) > c.ttl {
		data, _, err := c.vault.Get(ctx, "webhook/"+subscriptionID.String()+"/secret")
		if err != nil {
			return nil, err
		}
		if data["secret"] == "" {
			return nil, errors.New("the signing secret in Vault is empty")
		}
		e = cachedSecrets{secrets: []string{data["secret"]}, fetched: now}
		if prev := data["previous"]; prev != "" {
			if until, err := time.Parse(time.RFC3339, data["previous-expires-at"]); err == nil && now.Before(until) {
				e.secrets = append(e.secrets, prev)
				e.previousUntil = until
			}
		}
		c.mu.Lock()
		c.entries[subscriptionID] = e
		c.mu.Unlock()
	}
	if len(e.secrets) > 1 && !now.Before(e.previousUntil) {
		return e.secrets[:1], nil
	}
	return e.secrets, nil
}
