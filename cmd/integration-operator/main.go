// Command integration-operator is the one binary of the integration layer;
// its subcommands run the manager, the dispatcher and the credentials API,
// and apply database migrations.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
)

func main() {
	if err := newRootCommand().ExecuteContext(ctrl.SetupSignalHandler()); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "integration-operator",
		Short:         "Webhooks, API credentials and marketplace connectors for the commerce platform, run from Kubernetes resources",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newManagerCommand(), newDispatcherCommand(), newCredentialsAPICommand(), newMigrateCommand(), newRetriggerCommand(), newProduceCommand(), newReceiveCommand())
	return root
}

// envDefault lets every flag also be set from the environment, as
// containers are usually configured.
func envDefault(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return fallback
}
