// Command integration-operator is the one binary of the integration layer;
// its subcommands run the manager, the dispatcher and the credentials API,
// and apply database migrations.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	ctrl "sigs.k8s.io/controller-runtime"
)

func main() {
	root := newRootCommand()
	if isPlugin() {
		root = newPluginCommand()
		root.Use = "kubectl ss3"
	}
	if err := root.ExecuteContext(ctrl.SetupSignalHandler()); err != nil {
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
	root.AddCommand(newManagerCommand(), newDispatcherCommand(), newCredentialsAPICommand(), newMigrateCommand(), newRetriggerCommand(), newDeliveryAPICommand(), newPluginCommand(), newProduceCommand(), newReceiveCommand())
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

// databaseURLFlag registers --database-url, defaulting to DATABASE_URL
// without ever printing it: --help shows flag defaults, and the URL
// usually carries a password.
func databaseURLFlag(f *pflag.FlagSet, p *string, usage string) {
	*p = os.Getenv("DATABASE_URL")
	f.Var((*unprintedString)(p), "database-url", "Postgres connection URL [DATABASE_URL]"+usage)
}

// unprintedString is a string flag whose value String never returns, so
// neither --help nor an error message can show it.
type unprintedString string

func (s *unprintedString) String() string     { return "" }
func (s *unprintedString) Set(v string) error { *s = unprintedString(v); return nil }
func (s *unprintedString) Type() string       { return "string" }

// serve runs srv in g until ctx ends, then shuts it down gracefully.
func serve(g *errgroup.Group, ctx context.Context, srv *http.Server) {
	g.Go(func() error {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdownCtx)
	})
}

// newProcessRegistry is the Prometheus registry of a component that serves
// its own /metrics: the Go runtime and process collectors, plus its own.
func newProcessRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
