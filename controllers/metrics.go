package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the reconcilers write outside the cluster, so an idle
// pass can be seen to write nothing.
type Metrics struct {
	VaultWrites    *prometheus.CounterVec
	DatabaseWrites *prometheus.CounterVec
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
	}
	for _, c := range []prometheus.Collector{m.VaultWrites, m.DatabaseWrites} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
