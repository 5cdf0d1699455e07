package credentials

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the credentials API.
type Metrics struct {
	Validations  *prometheus.CounterVec
	Latency      prometheus.Histogram
	CacheLookups *prometheus.CounterVec
	Tokens       *prometheus.CounterVec
	// Bcrypts counts bcrypt comparisons actually run.
	Bcrypts         prometheus.Counter
	FeedUp          prometheus.Gauge
	DegradedLookups prometheus.Counter
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
		Bcrypts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credentials_bcrypt_comparisons_total",
			Help: "bcrypt comparisons run (each within a client's bcrypt budget).",
		}),
		FeedUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "credentials_change_feed_up",
			Help: "1 while the Postgres change feed (LISTEN) is up and answering its liveness ping.",
		}),
		DegradedLookups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credentials_degraded_lookups_total",
			Help: "Lookups answered from memory while the change feed was down (within the staleness window).",
		}),
	}
	for _, c := range []prometheus.Collector{m.Validations, m.Latency, m.CacheLookups, m.Tokens, m.Bcrypts, m.FeedUp, m.DegradedLookups} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
