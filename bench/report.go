package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
)

// Report is the result of one benchmark run, in the shape every benchmark
// shares. It prints as text (WriteText) or JSON (json.Marshal); the JSON
// gives durations in seconds and latencies in milliseconds.
type Report struct {
	// Name is the benchmark: "ingest", "query".
	Name string
	// Unit is what Ops counts: "events" for ingest, "requests" for query.
	Unit      string
	StartedAt time.Time
	Duration  time.Duration
	// Ops is the work done: events the server acknowledged (stored or
	// already held), or requests it answered.
	Ops int64
	// Requests counts every request made, answered or not.
	Requests int64
	// Duplicates counts events the server already held (ingest only).
	Duplicates        int64
	OpsPerSecond      float64
	RequestsPerSecond float64
	// Latency covers every request the server answered with 2xx.
	Latency Latency
	// Breakdown has the latency of each kind of request, when a benchmark
	// makes more than one kind (query: one per filter).
	Breakdown []Breakdown
	Errors    Errors
	// Interrupted is set when the run stopped before its planned work:
	// cancelled, or stopped by failures.
	Interrupted bool
	// Params are the settings the run used, for the record; never the key.
	Params map[string]any
}

// Latency summarises request durations.
type Latency struct {
	P50, P95, P99, Max, Mean time.Duration
}

// Breakdown is the latency of one kind of request.
type Breakdown struct {
	Name     string
	Requests int64
	Latency  Latency
}

// Errors counts failures.
type Errors struct {
	// Requests that got no 2xx answer: a transport error, a timeout or an
	// error status.
	Requests int64
	// Ops that failed, in the report's unit: for ingest, the events of
	// failed requests plus the items a batch response reported failed.
	Ops int64
	// First describes the first failure seen.
	First string
}

// newReport builds the report from the run's totals and the workers'
// latencies, which it consumes.
func newReport(p plan, t *tally, start time.Time, elapsed time.Duration, lat [][][]time.Duration) *Report {
	r := &Report{
		Name:       p.name,
		Unit:       p.unit,
		StartedAt:  start.UTC().Truncate(time.Millisecond),
		Duration:   elapsed,
		Ops:        t.ops.Load(),
		Requests:   t.requests.Load(),
		Duplicates: t.dups.Load(),
		Errors: Errors{
			Requests: t.failedRequests.Load(),
			Ops:      t.failed.Load(),
		},
		Params: p.params,
	}
	if err := t.firstError(); err != nil {
		r.Errors.First = err.Error()
	}
	if s := elapsed.Seconds(); s > 0 {
		r.OpsPerSecond = float64(r.Ops) / s
		r.RequestsPerSecond = float64(r.Requests) / s
	}

	byLabel := make([][]time.Duration, len(p.labels))
	total := 0
	for l := range p.labels {
		for w := range lat {
			byLabel[l] = append(byLabel[l], lat[w][l]...)
			lat[w][l] = nil // let the collector have it
		}
		total += len(byLabel[l])
	}
	if len(p.labels) == 1 {
		r.Latency = summarize(byLabel[0])
		return r
	}
	all := make([]time.Duration, 0, total)
	for l, name := range p.labels {
		all = append(all, byLabel[l]...)
		r.Breakdown = append(r.Breakdown, Breakdown{
			Name:     name,
			Requests: int64(len(byLabel[l])),
			Latency:  summarize(byLabel[l]),
		})
	}
	r.Latency = summarize(all)
	return r
}

// summarize sorts d in place and returns its percentiles.
func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return Latency{
		P50:  percentile(d, 50),
		P95:  percentile(d, 95),
		P99:  percentile(d, 99),
		Max:  d[len(d)-1],
		Mean: sum / time.Duration(len(d)),
	}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value that at least p% of the values
// are less than or equal to. It is always one of the values measured,
// never an interpolation between two.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	return sorted[min(max(rank, 1), n)-1]
}

// reportJSON is Report as JSON: times in plain numbers a script can use.
type reportJSON struct {
	Name              string          `json:"name"`
	Unit              string          `json:"unit"`
	StartedAt         time.Time       `json:"startedAt"`
	DurationSeconds   float64         `json:"durationSeconds"`
	Ops               int64           `json:"ops"`
	Requests          int64           `json:"requests"`
	Duplicates        int64           `json:"duplicates"`
	OpsPerSecond      float64         `json:"opsPerSecond"`
	RequestsPerSecond float64         `json:"requestsPerSecond"`
	Latency           latencyJSON     `json:"latencyMs"`
	Breakdown         []breakdownJSON `json:"breakdown,omitempty"`
	Errors            errorsJSON      `json:"errors"`
	Interrupted       bool            `json:"interrupted"`
	Params            map[string]any  `json:"params"`
}

type latencyJSON struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type breakdownJSON struct {
	Name     string      `json:"name"`
	Requests int64       `json:"requests"`
	Latency  latencyJSON `json:"latencyMs"`
}

type errorsJSON struct {
	Requests int64  `json:"requests"`
	Ops      int64  `json:"ops"`
	First    string `json:"first,omitempty"`
}

// MarshalJSON encodes the report with durations in seconds and latencies
// in milliseconds, to the microsecond.
func (r *Report) MarshalJSON() ([]byte, error) {
	v := reportJSON{
		Name:              r.Name,
		Unit:              r.Unit,
		StartedAt:         r.StartedAt,
		DurationSeconds:   round(r.Duration.Seconds(), 3),
		Ops:               r.Ops,
		Requests:          r.Requests,
		Duplicates:        r.Duplicates,
		OpsPerSecond:      round(r.OpsPerSecond, 1),
		RequestsPerSecond: round(r.RequestsPerSecond, 1),
		Latency:           latencyMS(r.Latency),
		Errors:            errorsJSON(r.Errors),
		Interrupted:       r.Interrupted,
		Params:            r.Params,
	}
	if v.Params == nil {
		v.Params = map[string]any{}
	}
	for _, b := range r.Breakdown {
		v.Breakdown = append(v.Breakdown, breakdownJSON{Name: b.Name, Requests: b.Requests, Latency: latencyMS(b.Latency)})
	}
	return json.Marshal(v)
}

func latencyMS(l Latency) latencyJSON {
	ms := func(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }
	return latencyJSON{P50: ms(l.P50), P95: ms(l.P95), P99: ms(l.P99), Max: ms(l.Max), Mean: ms(l.Mean)}
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// WriteText writes the report as an aligned table for people.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	title := "herald bench " + r.Name
	if r.Interrupted {
		title += " (stopped early; partial results)"
	}
	fmt.Fprintln(tw, title)
	if len(r.Params) > 0 {
		settings := make([]string, 0, len(r.Params))
		for _, k := range sortedLabels(r.Params) {
			settings = append(settings, fmt.Sprintf("%s=%v", k, r.Params[k]))
		}
		fmt.Fprintf(tw, "  settings\t%s\n", strings.Join(settings, " "))
	}
	fmt.Fprintf(tw, "  %s\t%s\n", r.Unit, humanize.Comma(r.Ops))
	if r.Unit != "requests" {
		fmt.Fprintf(tw, "  requests\t%s\n", humanize.Comma(r.Requests))
	}
	if r.Duplicates > 0 {
		fmt.Fprintf(tw, "  duplicates\t%s\n", humanize.Comma(r.Duplicates))
	}
	fmt.Fprintf(tw, "  duration\t%s\n", r.Duration.Round(time.Millisecond))
	fmt.Fprintf(tw, "  %s/s\t%s\n", r.Unit, humanize.CommafWithDigits(r.OpsPerSecond, 1))
	if r.Unit != "requests" {
		fmt.Fprintf(tw, "  requests/s\t%s\n", humanize.CommafWithDigits(r.RequestsPerSecond, 1))
	}
	fmt.Fprintf(tw, "  latency\t%s\n", latencyText(r.Latency))
	for _, b := range r.Breakdown {
		fmt.Fprintf(tw, "    %s\t%s in %s requests\n", b.Name, latencyText(b.Latency), humanize.Comma(b.Requests))
	}
	if r.Unit == "requests" {
		fmt.Fprintf(tw, "  failed\t%s requests\n", humanize.Comma(r.Errors.Requests))
	} else {
		fmt.Fprintf(tw, "  failed\t%s requests, %s %s\n", humanize.Comma(r.Errors.Requests), humanize.Comma(r.Errors.Ops), r.Unit)
	}
	if r.Errors.First != "" {
		fmt.Fprintf(tw, "  first failure\t%s\n", strings.ReplaceAll(r.Errors.First, "\n", " "))
	}
	return tw.Flush()
}

func latencyText(l Latency) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max))
}
