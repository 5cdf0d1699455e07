package tracing

import (
	"context"
	"testing"
)

func lookupOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestResolveOrder(t *testing.T) {
	shared := map[string]string{"endpoint": "http://vault-said:4317", "protocol": "http/protobuf", "sampler": "traceidratio", "sampler_arg": "0.5"}
	cases := []struct {
		name     string
		flags    Settings
		env      map[string]string
		endpoint string
		protocol string
		sampler  string
	}{
		{"nothing configured is off", Settings{}, nil, "", "", ""},
		{"vault alone", Settings{}, nil, "http://vault-said:4317", "http/protobuf", "traceidratio"},
		{"environment over vault", Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_TRACES_SAMPLER": "always_on"}, "http://env:4317", "grpc", ""},
		{"traces endpoint over the general one", Settings{}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4317"}, "http://traces:4317", "", ""},
		{"flag over environment", Settings{Endpoint: "http://flag:4317", Protocol: "grpc"}, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4317"},
			"http://flag:4317", "grpc", ""},
		{"OTEL_SDK_DISABLED wins", Settings{Endpoint: "http://flag:4317"}, map[string]string{"OTEL_SDK_DISABLED": "true"}, "", "", ""},
		{"OTEL_TRACES_EXPORTER=none wins", Settings{}, map[string]string{"OTEL_TRACES_EXPORTER": "none"}, "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var from map[string]string
			if c.name != "nothing configured is off" {
				from = shared
			}
			got := Resolve(c.flags, lookupOf(c.env), from)
			if got.Endpoint != c.endpoint || got.Protocol != c.protocol || got.Sampler != c.sampler {
				t.Errorf("got endpoint %q protocol %q sampler %q, want %q %q %q", got.Endpoint, got.Protocol, got.Sampler, c.endpoint, c.protocol, c.sampler)
			}
		})
	}
}

func TestOffCostsNothingAndRefusesNothing(t *testing.T) {
	tr, err := Start(context.Background(), Settings{}, "test")
	if err != nil || tr.Enabled() {
		t.Fatalf("no endpoint: enabled=%v err=%v", tr.Enabled(), err)
	}
	var none *Tracing
	if none.Enabled() || none.Shutdown(context.Background()) != nil || none.ForceFlush(context.Background()) != nil {
		t.Fatal("a nil Tracing is not off")
	}
	_, span := none.Tracer().Start(context.Background(), "x")
	if span.IsRecording() {
		t.Fatal("tracing off records spans")
	}
}

func TestBadSettingsAreRefused(t *testing.T) {
	for _, s := range []Settings{
		{Endpoint: "http://x:4317", Protocol: "thrift"},
		{Endpoint: "http://x:4317", Sampler: "sometimes"},
		{Endpoint: "http://x:4317", Sampler: "traceidratio", SamplerArg: "2"},
		{Endpoint: "not a url", Protocol: "http/protobuf"},
	} {
		if tr, err := Start(context.Background(), s, "test"); err == nil {
			_ = tr.Shutdown(context.Background())
			t.Errorf("%+v was accepted", s)
		}
	}
}
