package main

import (
	"context"
	"errors"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"

	"github.com/ss3dev/integration-operator/internal/tracing"
	"github.com/ss3dev/integration-operator/internal/vault"
)

// addTracingFlags binds the OTLP settings; the standard OTEL_* variables
// apply when a flag is not given, and Vault's shared/otel after them.
func addTracingFlags(f *pflag.FlagSet, s *tracing.Settings, service string) {
	f.StringVar(&s.Endpoint, "otlp-endpoint", "", "OTLP collector for traces, e.g. http://otel-collector:4317; default OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, then endpoint in Vault's shared/otel; none: tracing off")
	f.StringVar(&s.Protocol, "otlp-protocol", "", "grpc or http/protobuf; default OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, then Vault's shared/otel, then grpc")
	s.ServiceName = service
}

// startTracing resolves the settings and starts tracing, or leaves it off.
// Vault is asked only when neither flag nor environment names an
// endpoint; a Vault that cannot say leaves tracing off rather than the
// component down.
func startTracing(ctx context.Context, s tracing.Settings, vc *vault.Client, log logr.Logger) (*tracing.Tracing, error) {
	resolved := tracing.Resolve(s, tracing.Env, nil)
	if resolved.Endpoint == "" && !tracing.Disabled(tracing.Env) {
		// Bounded: tracing is not worth holding up the start for.
		readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		shared, err := vc.GetShared(readCtx, tracing.VaultPath)
		cancel()
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			log.Info("tracing stays off: the shared OpenTelemetry settings could not be read from Vault", "path", tracing.VaultPath, "reason", err.Error())
		}
		resolved = tracing.Resolve(s, tracing.Env, shared)
	}
	t, err := tracing.Start(ctx, resolved, "github.com/ss3dev/integration-operator/dispatcher")
	if err != nil {
		return nil, err
	}
	if t.Enabled() {
		log.Info("tracing on", "protocol", protocolOrDefault(resolved.Protocol))
	}
	return t, nil
}

func protocolOrDefault(p string) string {
	if p == "" {
		return "grpc"
	}
	return p
}
