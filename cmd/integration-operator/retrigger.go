package main

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/ss3dev/integration-operator/internal/store"
)

// newRetriggerCommand re-queues one dead-lettered delivery by id. Access to
// the database is the authentication; whole subscriptions are re-triggered
// with the retrigger-dead-letters annotation instead.
func newRetriggerCommand() *cobra.Command {
	var databaseURL, deliveryID string
	cmd := &cobra.Command{
		Use:   "retrigger",
		Short: "Re-queue one dead-lettered delivery, keeping its delivery id",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if databaseURL == "" {
				return errors.New("--database-url (or DATABASE_URL) is required")
			}
			id, err := uuid.Parse(deliveryID)
			if err != nil {
				return fmt.Errorf("--delivery-id must be a delivery's UUID: %w", err)
			}
			pool, err := store.Open(cmd.Context(), databaseURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			ok, err := store.New(pool).RequeueDelivery(cmd.Context(), id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("delivery %s is not dead-lettered (or does not exist); nothing re-queued", id)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "re-queued delivery %s\n", id)
			return nil
		},
	}
	databaseURLFlag(cmd.Flags(), &databaseURL, "")
	cmd.Flags().StringVar(&deliveryID, "delivery-id", "", "the delivery to re-queue (X-SS3-Delivery)")
	return cmd
}
