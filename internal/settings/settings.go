// Package settings fills in connection settings that the platform keeps in
// Vault rather than in the deployment: the database URL and credentials
// (`<prefix>/db.url`, `db.username`, `db.password`) and the Kafka bootstrap
// servers (`shared/kafka`). Values given by flag or environment win.
package settings

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/ss3dev/integration-operator/internal/vault"
)

// DatabaseURL returns current when set; otherwise it reads db.url from
// Vault (a postgres:// URL, or the JDBC URL the platform's Java services
// use) and, when present, puts db.username and db.password into it.
func DatabaseURL(ctx context.Context, v *vault.Client, current string) (string, error) {
	if current != "" {
		return current, nil
	}
	raw, err := value(ctx, v, "db.url")
	if err != nil {
		return "", fmt.Errorf("database url from Vault: %w", err)
	}
	if raw, err = fromJDBC(raw); err != nil {
		return "", fmt.Errorf("database url from Vault: %w", err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("database url from Vault: db.url is not a URL")
	}
	user, uerr := value(ctx, v, "db.username")
	pass, perr := value(ctx, v, "db.password")
	if uerr != nil && !errors.Is(uerr, vault.ErrNotFound) {
		return "", fmt.Errorf("database user from Vault: %w", uerr)
	}
	if uerr == nil {
		// The keys of their own win over what the URL says.
		q := u.Query()
		q.Del("user")
		q.Del("password")
		u.RawQuery = q.Encode()
		u.User = url.User(user)
		if perr == nil {
			u.User = url.UserPassword(user, pass)
		}
	}
	return u.String(), nil
}

// KafkaBrokers returns current when set; otherwise the bootstrap servers
// from Vault's shared/kafka (field bootstrap.servers, bootstrap or brokers).
func KafkaBrokers(ctx context.Context, v *vault.Client, current string) (string, error) {
	if current != "" {
		return current, nil
	}
	data, err := v.GetShared(ctx, "shared/kafka")
	if err != nil {
		return "", fmt.Errorf("kafka brokers from Vault: %w", err)
	}
	for _, k := range []string{"bootstrap.servers", "bootstrap", "brokers"} {
		if b := strings.TrimSpace(data[k]); b != "" {
			return b, nil
		}
	}
	return "", errors.New("kafka brokers from Vault: shared/kafka has no bootstrap.servers field")
}

// value reads a one-value secret: its "value" field, or its only field.
func value(ctx context.Context, v *vault.Client, name string) (string, error) {
	data, _, err := v.Get(ctx, name)
	if err != nil {
		return "", err
	}
	if s, ok := data["value"]; ok {
		return s, nil
	}
	if len(data) == 1 {
		for _, s := range data {
			return s, nil
		}
	}
	return "", fmt.Errorf("%s has no value field", name)
}
