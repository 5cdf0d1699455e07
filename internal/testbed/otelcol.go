package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Collector is the OpenTelemetry Collector (hack/build-tool.sh otelcol: the
// upstream otlp receiver and the contrib file exporter) on a free loopback
// port. What it receives over OTLP/gRPC it writes as OTLP JSON to a file,
// which Spans reads back.
type Collector struct {
	dir  string
	port int
	proc *process
}

// Span is one span the collector received, with ids in hex as traceparent
// shows them.
type Span struct {
	Name         string
	Service      string
	TraceID      string
	SpanID       string
	ParentSpanID string
	Attributes   map[string]string
}

// StartCollector starts a collector that stops when the test ends.
func StartCollector(t testing.TB) *Collector {
	t.Helper()
	bin, err := toolPath("otelcol", "OTELCOL_BIN")
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{dir: t.TempDir()}
	err = onFreePort(func(port int) error {
		c.port = port
		return c.start(bin)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.proc.stop(syscall.SIGTERM) })
	return c
}

func (c *Collector) start(bin string) error {
	// No telemetry of its own: its metrics endpoint would take a fixed port.
	conf := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  file:
    path: %s
    format: json
    flush_interval: 100ms
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
`, hostPort(c.port), c.spansPath())
	confPath := filepath.Join(c.dir, "otelcol.yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return err
	}
	var err error
	c.proc, err = startProcess(context.Background(), "otelcol", exec.Command(bin, "--config", confPath),
		filepath.Join(c.dir, "otelcol.log"), 30*time.Second, listening(hostPort(c.port)))
	return err
}

func (c *Collector) spansPath() string { return filepath.Join(c.dir, "spans.jsonl") }

// Endpoint is the OTLP/gRPC URL, for OTEL_EXPORTER_OTLP_ENDPOINT.
func (c *Collector) Endpoint() string { return "http://" + hostPort(c.port) }

// otlpJSON is the part of OTLP JSON (one export request a line) we read.
type otlpJSON struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []otlpKeyValue `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string         `json:"traceId"`
				SpanID       string         `json:"spanId"`
				ParentSpanID string         `json:"parentSpanId"`
				Name         string         `json:"name"`
				Attributes   []otlpKeyValue `json:"attributes"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpKeyValue struct {
	Key   string `json:"key"`
	Value struct {
		StringValue *string  `json:"stringValue"`
		IntValue    *string  `json:"intValue"` // int64 is a string in OTLP JSON
		BoolValue   *bool    `json:"boolValue"`
		DoubleValue *float64 `json:"doubleValue"`
	} `json:"value"`
}

func (kv otlpKeyValue) text() string {
	switch v := kv.Value; {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return *v.IntValue
	case v.BoolValue != nil:
		return strconv.FormatBool(*v.BoolValue)
	case v.DoubleValue != nil:
		return strconv.FormatFloat(*v.DoubleValue, 'g', -1, 64)
	}
	return ""
}

// Spans returns the spans the collector has written out so far.
func (c *Collector) Spans() ([]Span, error) {
	data, err := os.ReadFile(c.spansPath())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// A line still being written (no newline yet) is read next time.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var spans []Span
	for line := range bytes.Lines(data) {
		var req otlpJSON
		if err := json.Unmarshal(line, &req); err != nil {
			return nil, fmt.Errorf("the collector's output: %w", err)
		}
		for _, rs := range req.ResourceSpans {
			service := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.text()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					attrs := make(map[string]string, len(s.Attributes))
					for _, kv := range s.Attributes {
						attrs[kv.Key] = kv.text()
					}
					spans = append(spans, Span{Name: s.Name, Service: service, TraceID: s.TraceID, SpanID: s.SpanID,
						ParentSpanID: s.ParentSpanID, Attributes: attrs})
				}
			}
		}
	}
	return spans, nil
}
