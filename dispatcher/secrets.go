package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/ss3dev/integration-operator/internal/vault"
)

// secretCache reads subscriptions' signing secrets from Vault and keeps
// them for a short while, so a delivery costs no Vault round trip.
type secretCache struct {
	vault   *vault.Client
	entries *expirable.LRU[uuid.UUID, cachedSecrets]
}

type cachedSecrets struct {
	secrets []string
	// previousUntil: the previous secret is used until then.
	previousUntil time.Time
}

var errEmptySecret = errors.New("the signing secret in Vault is empty")

// maxCachedSecrets bounds the subscriptions whose secrets are kept in memory.
const maxCachedSecrets = 100_000

func newSecretCache(v *vault.Client, ttl time.Duration) *secretCache {
	return &secretCache{vault: v, entries: expirable.NewLRU[uuid.UUID, cachedSecrets](maxCachedSecrets, nil, ttl)}
}

// get returns the secrets to sign with: the current one, then the previous
// one while its grace period lasts.
func (c *secretCache) get(ctx context.Context, subscriptionID uuid.UUID) ([]string, error) {
	now := time.Now()
	e, ok := c.entries.Get(subscriptionID)
	if !ok {
		data, _, err := c.vault.Get(ctx, "webhook/"+subscriptionID.String()+"/secret")
		if err != nil {
			return nil, err
		}
		if data["secret"] == "" {
			return nil, errEmptySecret
		}
		e = cachedSecrets{secrets: []string{data["secret"]}}
		if prev := data["previous"]; prev != "" {
			if until, err := time.Parse(time.RFC3339, data["previous-expires-at"]); err == nil && now.Before(until) {
				e.secrets = append(e.secrets, prev)
				e.previousUntil = until
			}
		}
		c.entries.Add(subscriptionID, e)
	}
	if len(e.secrets) > 1 && !now.Before(e.previousUntil) {
		return e.secrets[:1], nil
	}
	return e.secrets, nil
}
