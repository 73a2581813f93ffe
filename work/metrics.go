package work

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus series. They are not per job: the
// API shows each job's counts (Work.Runtime), and a series per job would
// grow with every job ever created.
type metrics struct {
	cycles       *prometheus.CounterVec
	units        prometheus.Counter
	events       prometheus.Counter
	unitFailures *prometheus.CounterVec
	firings      *prometheus.CounterVec
	held         prometheus.Gauge
	leaseErrors  prometheus.Counter
	storeErrors  prometheus.Counter
}

// Outcomes of an alert firing.
const (
	firingSent       = "sent"
	firingRetry      = "retry"
	firingFailed     = "failed"
	firingSuppressed = "suppressed"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_export_cycles_total",
			Help: "Export cycles finished, by outcome (succeeded; failed: the job failed).",
		}, []string{"outcome"}),
		units: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_export_units_total",
			Help: "Export units written: files, webhook batches, table inserts.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_export_events_total",
			Help: "Events exported.",
		}),
		unitFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_export_unit_failures_total",
			Help: "Export units that could not be written, by what followed (retry; final: the job failed).",
		}, []string{"outcome"}),
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_alert_firings_total",
			Help: "Alert firings by outcome (sent; retry: a send failed and is tried again; failed: given up; suppressed: a firing its cooldown kept quiet).",
		}, []string{"outcome"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_work_jobs_held",
			Help: "Export and alert jobs this node holds the lease of and runs.",
		}),
		leaseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_work_lease_errors_total",
			Help: "Failed attempts to lease work jobs (retried at the next interval).",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_work_store_errors_total",
			Help: "Failed reads and saves of work jobs and the event log (retried after a pause).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.cycles, m.units, m.events, m.unitFailures, m.firings, m.held, m.leaseErrors, m.storeErrors)
	}
	return m
}
