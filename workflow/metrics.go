package workflow

import "github.com/prometheus/client_golang/prometheus"

// outcomeStarted labels the runs started (their first step attempted).
const outcomeStarted = "started"

// metrics are the engine's Prometheus series. They are not by account or
// workflow: names chosen by clients would make the series unbounded.
type metrics struct {
	runs        *prometheus.CounterVec
	steps       *prometheus.CounterVec
	triggered   prometheus.Counter
	held        prometheus.Gauge
	storeErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_workflow_runs_total",
			Help: "Workflow runs by outcome: started (first step attempted), completed, failed (a step failed for good, or refused for its depth).",
		}, []string{"outcome"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_workflow_steps_total",
			Help: "Attempts of workflow steps by kind and outcome (succeeded, retried: tried again later, failed: the run failed).",
		}, []string{"kind", "outcome"}),
		triggered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_workflow_runs_enqueued_total",
			Help: "Workflow runs stored for a triggering event, by the readers of this node.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_workflows_held",
			Help: "Workflows this node holds the lease of and reads the triggers of.",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_workflow_store_errors_total",
			Help: "Failed reads and writes of workflow state (tried again after a pause).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.runs, m.steps, m.triggered, m.held, m.storeErrors)
	}
	return m
}
