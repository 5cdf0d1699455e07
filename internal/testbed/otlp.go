package testbed

import (
	"context"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// OTLPReceiver is an OTLP/gRPC trace endpoint on a free loopback port,
// serving the collector's TraceService from the official OTLP protobuf
// definitions (the wire protocol a Collector or Jaeger speaks), and
// keeping every span it is sent. Building a Collector for the tests would
// cost minutes of compilation for the same wire protocol.
type OTLPReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string
	mu   sync.Mutex
	got  []Span
	// countOnly: count spans without keeping them (benchmarks).
	countOnly bool
	count     int
}

// Span is one received span, with ids in hex as traceparent shows them.
type Span struct {
	Name         string
	Service      string
	TraceID      string
	SpanID       string
	ParentSpanID string
	Kind         tracepb.Span_SpanKind
	Attributes   map[string]string
}

// StartOTLPReceiver starts a receiver that stops when the test ends.
func StartOTLPReceiver(t testing.TB) *OTLPReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &OTLPReceiver{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return r
}

// Endpoint is the receiver's URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
func (r *OTLPReceiver) Endpoint() string { return "http://" + r.addr }

// Export implements the OTLP TraceService.
func (r *OTLPReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.count += len(ss.GetSpans())
			if r.countOnly {
				continue
			}
			for _, s := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, kv := range s.GetAttributes() {
					attrs[kv.GetKey()] = anyValue(kv.GetValue())
				}
				r.got = append(r.got, Span{Name: s.GetName(), Service: service, TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentSpanID: hex.EncodeToString(s.GetParentSpanId()), Kind: s.GetKind(), Attributes: attrs})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// CountOnly makes the receiver count spans without keeping them.
func (r *OTLPReceiver) CountOnly() {
	r.mu.Lock()
	r.countOnly = true
	r.mu.Unlock()
}

// Received is how many spans arrived so far.
func (r *OTLPReceiver) Received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// Spans returns the spans received so far.
func (r *OTLPReceiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.got...)
}

// anyValue renders an attribute value as text (strings, ints, bools).
func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	}
	return ""
}
