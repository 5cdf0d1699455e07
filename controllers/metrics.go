package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the reconcilers write outside the cluster, so an idle
// pass can be seen to write nothing.
type Metrics struct {
	VaultWrites    *prometheus.CounterVec
	DatabaseWrites *prometheus.CounterVec
	// The status reporter's writes against its budget.
	StatusWrites         *prometheus.CounterVec
	StatusWritesDeferred *prometheus.CounterVec
	StatusPassSeconds    prometheus.Histogram
}

// NewMetrics creates the counters and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		VaultWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_operator_vault_writes_total",
			Help: "Writes and deletes the manager made in Vault, by resource kind and operation.",
		}, []string{"kind", "op"}),
		DatabaseWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_operator_database_writes_total",
			Help: "Rows the manager inserted or updated in Postgres, by table.",
		}, []string{"table"}),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_operator_status_writes_total",
			Help: "Status patches the status reporter made, by resource kind and change (health or counters).",
		}, []string{"kind", "change"}),
		StatusWritesDeferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "integration_operator_status_writes_deferred_total",
			Help: "Status patches left to a later pass by the write budget or a patch still in flight, by resource kind.",
		}, []string{"kind"}),
		StatusPassSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "integration_operator_status_pass_seconds",
			Help:    "How long one status reporter pass took (bounded by --delivery-status-interval).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
	}
	for _, c := range []prometheus.Collector{m.VaultWrites, m.DatabaseWrites, m.StatusWrites, m.StatusWritesDeferred, m.StatusPassSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeStatusPass records one reporter pass; m may be nil.
func (m *Metrics) observeStatusPass(res passResult, took time.Duration) {
	if m == nil {
		return
	}
	for l, n := range res.written {
		m.StatusWrites.WithLabelValues(l.kind, l.change).Add(float64(n))
	}
	for kind, n := range res.deferred {
		m.StatusWritesDeferred.WithLabelValues(kind).Add(float64(n))
	}
	m.StatusPassSeconds.Observe(took.Seconds())
}
