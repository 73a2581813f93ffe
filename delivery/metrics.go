package delivery

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus series, per subscription where it
// matters to whoever runs the endpoint.
type metrics struct {
	deliveries  *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	backlog     *prometheus.GaugeVec
	held        prometheus.Gauge
	leaseErrors prometheus.Counter
	storeErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sub := []string{"account", "subscription"}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_deliveries_total",
			Help: "Webhook requests by subscription and outcome (delivered, failed: tried again, final: given up).",
		}, append(sub, "outcome")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_delivery_latency_seconds",
			Help:    "Time from sending a webhook request to reading the answer's head, by subscription.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, sub),
		backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_delivery_backlog",
			Help: "Events read and not yet delivered, plus messages waiting for a retry, by subscription (as this node sees it).",
		}, sub),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_delivery_subscriptions_held",
			Help: "Subscriptions this node holds the lease of and delivers.",
		}),
		leaseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_lease_errors_total",
			Help: "Failed attempts to lease subscriptions (retried at the next interval).",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_delivery_store_errors_total",
			Help: "Failed reads and saves of delivery state (retried after a pause).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.deliveries, m.latency, m.backlog, m.held, m.leaseErrors, m.storeErrors)
	}
	return m
}

// forget drops the series of a subscription this node no longer holds.
func (m *metrics) forget(k subKey) {
	l := prometheus.Labels{"account": k.account, "subscription": k.id}
	m.deliveries.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
	m.backlog.DeletePartialMatch(l)
}
