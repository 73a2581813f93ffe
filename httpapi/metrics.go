package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus metrics. The group committer registers
// its batch-size metrics itself.
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	eventsStored prometheus.Counter
	handler      http.Handler
}

func newMetrics(reg prometheus.Registerer, gather prometheus.Gatherer) *metrics {
	if reg == nil {
		private := prometheus.NewRegistry()
		reg = private
		if gather == nil {
			gather = private
		}
	}
	if gather == nil {
		if g, ok := reg.(prometheus.Gatherer); ok {
			gather = g
		} else {
			gather = prometheus.NewRegistry()
		}
	}
	m := &metrics{
		requests: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"})),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "herald_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"})),
		eventsStored: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_events_stored_total",
			Help: "Events stored through the API (duplicates not counted).",
		})),
	}
	m.handler = promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
	return m
}

// register registers c, or returns the collector already registered under
// the same name, so that two Servers may share one registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("httpapi: register metrics: " + err.Error())
}

func (m *metrics) observe(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}
