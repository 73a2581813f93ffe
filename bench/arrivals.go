package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// arrivals notes when each event of a run reached the far end (a webhook
// receiver, a live stream), against when the ingest request that carried
// it began: the ingest-to-receive latency of `bench delivery` and `bench
// stream`.
type arrivals struct {
	prefix   string         // event ids of this run start with it
	sent     []atomic.Int64 // unix nanos each event's ingest request began
	received []atomic.Int64 // unix nanos it arrived; 0 until then
	count    atomic.Int64
	dups     atomic.Int64
	last     atomic.Int64
	done     chan struct{} // closed once every event arrived
	once     sync.Once
}

func newArrivals(runID string, events int) *arrivals {
	return &arrivals{
		prefix:   "bench-" + runID + "-",
		sent:     make([]atomic.Int64, events),
		received: make([]atomic.Int64, events),
		done:     make(chan struct{}),
	}
}

// arrived notes that the event with id arrived at now; an id of another
// run is ignored.
func (a *arrivals) arrived(id string, now int64) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, a.prefix))
	if !strings.HasPrefix(id, a.prefix) || err != nil || n < 0 || n >= len(a.received) {
		return // not an event of this run
	}
	a.arrivedN(n, now)
}

// arrivedN notes that event n of the run arrived at now.
func (a *arrivals) arrivedN(n int, now int64) {
	if !a.received[n].CompareAndSwap(0, now) {
		a.dups.Add(1)
		return
	}
	a.last.Store(now)
	if a.count.Add(1) == int64(len(a.received)) {
		a.once.Do(func() { close(a.done) })
	}
}

// sendOptions are what the sending half of an arrival benchmark needs.
type sendOptions struct {
	name   string
	events int
	batch  int
	rate   float64 // events/s; 0 as fast as the workers go
	params map[string]any
}

// sendPlan is the plan that sends the run's events in batches to POST
// /v1/events/batch, noting when each request began in a.sent. Its stop
// function releases the pacing ticker.
func sendPlan(o Options, so sendOptions, client *http.Client, gen *generator, a *arrivals) (p plan, stop func()) {
	endpoint, auth := o.endpoint("/v1/events/batch"), "Bearer "+o.Key
	stop = func() {}
	var pace <-chan time.Time
	if so.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) * float64(so.batch) / so.rate))
		stop = t.Stop
		pace = t.C
	}
	p = plan{
		name:     so.name,
		unit:     "events",
		requests: (so.events + so.batch - 1) / so.batch,
		units:    so.events,
		labels:   []string{"ingest"},
		params:   so.params,
		newWorker: func(int) func(context.Context, int) outcome {
			var resp bytes.Buffer
			return func(ctx context.Context, req int) outcome {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return outcome{}
					}
				}
				first := req * so.batch
				n := min(so.batch, so.events-first)
				body := gen.appendBatch(nil, first, n, false)
				hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
				if err != nil {
					return outcome{failed: n, err: err, fatal: true}
				}
				hreq.Header = http.Header{"Authorization": {auth}, "Content-Type": {"application/json"}}
				start := time.Now().UnixNano()
				for i := first; i < first+n; i++ {
					a.sent[i].Store(start)
				}
				status, latency, err := exchange(client, hreq, &resp)
				switch {
				case err != nil:
					return outcome{failed: n, err: err}
				case status/100 != 2:
					return outcome{failed: n, err: statusError(http.MethodPost, "/v1/events/batch", status, resp.Bytes()), fatal: fatalStatus(status)}
				}
				return batchOutcome(outcome{answered: true, latency: latency}, n, resp.Bytes())
			}
		},
	}
	return p, stop
}

// arrivalReport turns what arrived into the report: Ops are the events
// that arrived, in unit; the rate runs from the first ingest request to
// the last arrival, and the latency is ingest-to-receive. ingest is the
// sending run's report, kept as the breakdown's "ingest request".
func arrivalReport(ingest *Report, a *arrivals, unit string, wait time.Duration, extra string) *Report {
	r := *ingest
	r.Unit = unit
	r.Ops = a.count.Load()
	r.Duplicates = a.dups.Load()
	var lat []time.Duration
	first := int64(0)
	for i := range a.received {
		sent := a.sent[i].Load()
		if first == 0 || (sent != 0 && sent < first) {
			first = sent
		}
		if got := a.received[i].Load(); got != 0 && sent != 0 {
			lat = append(lat, time.Duration(got-sent))
		}
	}
	if last := a.last.Load(); last > first && first != 0 {
		r.Duration = time.Duration(last - first)
		r.OpsPerSecond = float64(r.Ops) / r.Duration.Seconds()
	}
	r.Latency = summarize(lat)
	r.Breakdown = []Breakdown{{Name: "ingest request", Requests: ingest.Requests, Latency: ingest.Latency}}
	events := int64(len(a.received))
	if missing := events - r.Ops; missing > 0 || extra != "" {
		r.Errors.Ops = missing
		r.Errors.First = fmt.Sprintf("%d of %d events did not arrive within %s of the last send%s", missing, events, wait, extra)
	}
	return &r
}
