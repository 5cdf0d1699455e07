// Package tracing sets up OpenTelemetry tracing for the components: an
// OTLP exporter (gRPC or HTTP) configured by flag, by the standard OTEL_*
// environment variables or by the platform's shared settings in Vault
// (shared/otel), in that order, and the W3C trace context propagator.
// When none of them names an endpoint, tracing is off: Enabled reports
// false, the tracer is a no-op, and callers skip all tracing work.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// VaultPath is where the platform keeps its shared OpenTelemetry settings
// (fields endpoint, protocol, sampler, sampler_arg), under the KV mount.
const VaultPath = "shared/otel"

// Settings say where spans go. Zero values are filled from the
// environment; an empty Endpoint after that turns tracing off.
type Settings struct {
	// Endpoint is the OTLP base URL, e.g. http://otel-collector:4317
	// (gRPC) or http://otel-collector:4318 (HTTP; /v1/traces is added
	// when the URL has no path).
	Endpoint string
	// Protocol is grpc or http/protobuf.
	Protocol string
	// Sampler and SamplerArg as OTEL_TRACES_SAMPLER and its argument.
	Sampler, SamplerArg string
	// ServiceName is the default service.name (OTEL_SERVICE_NAME wins).
	ServiceName string
	// fromEnv: the endpoint came from OTEL_EXPORTER_OTLP_*, which the
	// exporter then reads itself (with its own path rules).
	fromEnv bool
}

// Resolve fills s from the environment (lookup, e.g. os.LookupEnv) and
// then from the shared settings read from Vault (shared may be nil).
// Flags (already in s) win over the environment, which wins over Vault;
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn tracing off.
func Resolve(s Settings, lookup func(string) (string, bool), shared map[string]string) Settings {
	env := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	if Disabled(lookup) {
		return Settings{}
	}
	if s.Endpoint == "" {
		if e := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"); e != "" {
			s.Endpoint, s.fromEnv = e, true
		}
	}
	if s.Protocol == "" {
		s.Protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	// Vault's settings come as a whole, and only when nothing nearer
	// names an endpoint: its protocol must not meet another endpoint.
	if s.Endpoint == "" && strings.TrimSpace(shared["endpoint"]) != "" {
		s.Endpoint = strings.TrimSpace(shared["endpoint"])
		if s.Protocol == "" {
			s.Protocol = strings.TrimSpace(shared["protocol"])
		}
		if s.Sampler == "" && env("OTEL_TRACES_SAMPLER") == "" {
			// The SDK reads OTEL_TRACES_SAMPLER itself.
			s.Sampler, s.SamplerArg = strings.TrimSpace(shared["sampler"]), strings.TrimSpace(shared["sampler_arg"])
		}
	}
	return s
}

// Disabled reports whether the environment turns tracing off whatever is
// configured (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none).
func Disabled(lookup func(string) (string, bool)) bool {
	sdk, _ := lookup("OTEL_SDK_DISABLED")
	exporter, _ := lookup("OTEL_TRACES_EXPORTER")
	return strings.EqualFold(strings.TrimSpace(sdk), "true") || strings.EqualFold(strings.TrimSpace(exporter), "none")
}

// Tracing is the components' tracer and propagator. The zero value and
// nil are off.
type Tracing struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
}

// Off returns tracing that is off.
func Off() *Tracing { return &Tracing{} }

// Enabled reports whether spans are recorded and exported; callers skip
// every tracing step when it is false, so tracing off costs nothing.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Tracer is the instrumentation's tracer (a no-op when off).
func (t *Tracing) Tracer() trace.Tracer {
	if !t.Enabled() {
		return noop.NewTracerProvider().Tracer("")
	}
	return t.tracer
}

// Propagator is the W3C trace context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Shutdown flushes the spans not yet exported.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// ForceFlush exports the spans ended so far (tests, and before exit).
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Start builds the exporter and provider for s, or returns tracing off
// when s names no endpoint. scope names the instrumentation (the
// component's package).
func Start(ctx context.Context, s Settings, scope string) (*Tracing, error) {
	if s.Endpoint == "" {
		return Off(), nil
	}
	exporter, err := newExporter(ctx, s)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", s.ServiceName)),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)}
	if s.Sampler != "" {
		sampler, err := parseSampler(s.Sampler, s.SamplerArg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, sdktrace.WithSampler(sampler))
	}
	provider := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: provider, tracer: provider.Tracer(scope)}, nil
}

func newExporter(ctx context.Context, s Settings) (sdktrace.SpanExporter, error) {
	switch s.Protocol {
	case "", "grpc":
		var opts []otlptracegrpc.Option
		if !s.fromEnv {
			opts = append(opts, otlptracegrpc.WithEndpointURL(s.Endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	case "http/protobuf":
		var opts []otlptracehttp.Option
		if !s.fromEnv {
			u, err := url.Parse(s.Endpoint)
			if err != nil || u.Host == "" {
				return nil, errors.New("tracing: the OTLP endpoint is not a URL")
			}
			if u.Path == "" || u.Path == "/" {
				u.Path = "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u.String()))
		}
		return otlptracehttp.New(ctx, opts...)
	default:
		return nil, fmt.Errorf("tracing: OTLP protocol %q is not grpc or http/protobuf", s.Protocol)
	}
}

// parseSampler reads the OTEL_TRACES_SAMPLER names the SDK knows.
func parseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := 1.0
	if arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, fmt.Errorf("tracing: sampler argument %q is not a ratio between 0 and 1", arg)
		}
		ratio = r
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	}
	return nil, fmt.Errorf("tracing: unknown sampler %q", name)
}

// Env is os.LookupEnv, for Resolve.
var Env = os.LookupEnv
