package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ss3dev/integration-operator/internal/settings"
	"github.com/ss3dev/integration-operator/internal/store"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// databaseURLOrVault is the given URL, or else the one Vault holds; with
// neither it says how to give one.
func databaseURLOrVault(ctx context.Context, given string, cfg vault.Config) (string, error) {
	if given != "" {
		return given, nil
	}
	if cfg.Token == "" && cfg.Auth != vault.AuthKubernetes {
		return "", errors.New("--database-url (or DATABASE_URL) is required, or Vault access (VAULT_TOKEN or --vault-auth-method=kubernetes) to read it from")
	}
	v, err := vault.New(ctx, cfg)
	if err != nil {
		return "", err
	}
	url, err := settings.DatabaseURL(ctx, v, "")
	if err != nil {
		return "", fmt.Errorf("%w (or set --database-url / DATABASE_URL)", err)
	}
	return url, nil
}

func newMigrateCommand() *cobra.Command {
	var databaseURL string
	var vaultCfg vault.Config
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations and exit (the manager also applies them at start-up)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			url, err := databaseURLOrVault(cmd.Context(), databaseURL, vaultCfg)
			if err != nil {
				return err
			}
			applied, err := store.Migrate(cmd.Context(), url)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d migration(s) %v\n", len(applied), applied)
			return nil
		},
	}
	databaseURLFlag(cmd.Flags(), &databaseURL, "; default: from Vault")
	addVaultFlags(cmd.Flags(), &vaultCfg)
	return cmd
}
