package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ss3dev/integration-operator/internal/deliveryapi"
	"github.com/ss3dev/integration-operator/internal/store"
)

// newDeliveryAPICommand serves the delivery log as an aggregated API
// (deliveries.integrations.ss3.dev), behind the cluster's API server.
func newDeliveryAPICommand() *cobra.Command {
	var databaseURL string
	o := deliveryapi.NewOptions()
	cmd := &cobra.Command{
		Use:   "delivery-api",
		Short: "Serve webhook and connector deliveries, test events and re-triggers as Kubernetes resources (an aggregated API)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New())
			if databaseURL == "" {
				return errors.New("--database-url (or DATABASE_URL) is required")
			}
			kube, err := ctrl.GetConfig()
			if err != nil {
				return fmt.Errorf("kubernetes config: %w", err)
			}
			pool, err := store.Open(cmd.Context(), databaseURL)
			if err != nil {
				return err
			}
			defer pool.Close()
			return deliveryapi.Run(cmd.Context(), o, kube, store.New(pool))
		},
	}
	databaseURLFlag(cmd.Flags(), &databaseURL, "")
	o.AddFlags(cmd.Flags())
	return cmd
}
