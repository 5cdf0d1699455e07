package stream

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the live stream. Labels are fixed sets: no credential or
// store appears in them.
type Metrics struct {
	Clients     prometheus.Gauge
	Dropped     *prometheus.CounterVec
	Refused     *prometheus.CounterVec
	Sent        prometheus.Counter
	WindowBytes prometheus.Gauge
}

// Why a stream was dropped, or refused.
const (
	DropBehind             = "behind"       // its buffer overflowed
	DropWriteFailed        = "write_failed" // its socket refused a write, or took none for WriteTimeout
	RefusedCredentialLimit = "credential_limit"
	RefusedReplicaLimit    = "replica_limit"
)

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Clients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stream_clients",
			Help: "Live event streams open on this replica.",
		}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stream_clients_dropped_total",
			Help: "Streams closed by the server: behind (the client fell a whole buffer behind) or write_failed (its socket took nothing for the write timeout, or broke).",
		}, []string{"reason"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stream_connections_refused_total",
			Help: "Streams refused: credential_limit (429) or replica_limit (503).",
		}, []string{"reason"}),
		Sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stream_events_sent_total",
			Help: "Events written to stream clients, live (resumed backlogs excluded).",
		}),
		WindowBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stream_window_bytes",
			Help: "Bytes of events kept for clients resuming with Last-Event-ID, against --stream-window-bytes.",
		}),
	}
	for _, c := range []prometheus.Collector{m.Clients, m.Dropped, m.Refused, m.Sent, m.WindowBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
