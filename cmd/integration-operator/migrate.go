package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ss3dev/integration-operator/internal/store"
)

func newMigrateCommand() *cobra.Command {
	var databaseURL string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations and exit (the manager also applies them at start-up)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" {
				return errors.New("--database-url (or DATABASE_URL) is required")
			}
			applied, err := store.Migrate(cmd.Context(), databaseURL)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %d migration(s) %v\n", len(applied), applied)
			return nil
		},
	}
	cmd.Flags().StringVar(&databaseURL, "database-url", envDefault("DATABASE_URL", ""), "Postgres connection URL [DATABASE_URL]")
	return cmd
}
