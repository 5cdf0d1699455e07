package credentials

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the credentials API.
type Metrics struct {
	Validations  *prometheus.CounterVec
	Latency      prometheus.Histogram
	CacheLookups *prometheus.CounterVec
	Tokens       *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credentials_validations_total",
			Help: "Credential validations, by outcome.",
		}, []string{"outcome"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credentials_validation_duration_seconds",
			Help:    "Time to answer a validation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .05, .1, .25, .5, 1},
		}),
		CacheLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credentials_cache_lookups_total",
			Help: "Verified-secret cache lookups, by result (hit or miss); hit/(hit+miss) is the hit ratio.",
		}, []string{"result"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credentials_oauth_tokens_total",
			Help: "OAuth token requests, by outcome.",
		}, []string{"outcome"}),
	}
	for _, c := range []prometheus.Collector{m.Validations, m.Latency, m.CacheLookups, m.Tokens} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
