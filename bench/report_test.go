package bench

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	ms := func(n ...int) []time.Duration {
		d := make([]time.Duration, len(n))
		for i, x := range n {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", ms(7), 1, 7 * time.Millisecond},
		{"one value, p100", ms(7), 100, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p95 of 1..100", hundred, 95, 95 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p99.9 of 1..100 rounds up", hundred, 99.9, 100 * time.Millisecond},
		{"p50 of 4 is the 2nd, not between", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p51 of 4 is the 3rd", ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p0 clamps to the min", ms(3, 5), 0, 3 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("%s: p%g = %s, want %s", tc.name, tc.p, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	// 1..1000 µs, shuffled: summarize sorts.
	d := make([]time.Duration, 1000)
	for i := range d {
		d[i] = time.Duration((i*7919)%1000+1) * time.Microsecond
	}
	got := summarize(d)
	want := Latency{P50: 500 * time.Microsecond, P95: 950 * time.Microsecond, P99: 990 * time.Microsecond, Max: time.Millisecond, Mean: 500500 * time.Nanosecond}
	if got != want {
		t.Errorf("summarize = %+v, want %+v", got, want)
	}
	if !slices.IsSorted(d) {
		t.Error("summarize left the durations unsorted")
	}
	if (summarize(nil) != Latency{}) {
		t.Error("summarize(nil) is not zero")
	}
}

func sampleReport() *Report {
	return &Report{
		Name:              "query",
		Unit:              "requests",
		StartedAt:         time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Duration:          2500 * time.Millisecond,
		Ops:               10000,
		Requests:          10000,
		OpsPerSecond:      4000,
		RequestsPerSecond: 4000,
		Latency:           Latency{P50: 1500 * time.Microsecond, P95: 4 * time.Millisecond, P99: 12345678, Max: 30 * time.Millisecond, Mean: 2 * time.Millisecond},
		Breakdown: []Breakdown{
			{Name: "type", Requests: 5000, Latency: Latency{P99: 10 * time.Millisecond}},
			{Name: "coreCustomerId", Requests: 5000, Latency: Latency{P99: 15 * time.Millisecond}},
		},
		Errors: Errors{Requests: 2, Ops: 2, First: "GET /v1/events?type=x: HTTP 500: boom"},
		Params: map[string]any{"url": "http://127.0.0.1:8080", "concurrency": 8, "requests": 10000},
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(sampleReport())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"query","unit":"requests","startedAt":"2026-03-01T12:00:00Z","durationSeconds":2.5,` +
		`"ops":10000,"requests":10000,"duplicates":0,"opsPerSecond":4000,"requestsPerSecond":4000,` +
		`"latencyMs":{"p50":1.5,"p95":4,"p99":12.346,"max":30,"mean":2},` +
		`"breakdown":[{"name":"type","requests":5000,"latencyMs":{"p50":0,"p95":0,"p99":10,"max":0,"mean":0}},` +
		`{"name":"coreCustomerId","requests":5000,"latencyMs":{"p50":0,"p95":0,"p99":15,"max":0,"mean":0}}],` +
		`"errors":{"requests":2,"ops":2,"first":"GET /v1/events?type=x: HTTP 500: boom"},"interrupted":false,` +
		`"params":{"concurrency":8,"requests":10000,"url":"http://127.0.0.1:8080"}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}

	// A report without breakdown or params still has every other key.
	b, err = json.Marshal(&Report{Name: "ingest", Unit: "events"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if got, want := strings.Join(keys, " "), "duplicates durationSeconds errors interrupted latencyMs name ops opsPerSecond params requests requestsPerSecond startedAt unit"; got != want {
		t.Errorf("keys %s\nwant %s", got, want)
	}
}

func TestReportText(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	r := sampleReport()
	r.Interrupted = true
	if err := r.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	// Compare words, not the padding.
	out := buf.String()
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = squash(lines[i])
	}
	for _, want := range []string{
		"herald bench query (stopped early; partial results)",
		"settings concurrency=8 requests=10000 url=http://127.0.0.1:8080",
		"requests 10,000",
		"duration 2.5s",
		"requests/s 4,000.0",
		"latency p50 1.50ms p95 4.00ms p99 12.35ms max 30.00ms",
		"type p50 0.00ms p95 0.00ms p99 10.00ms max 0.00ms in 5,000 requests",
		"failed 2 requests",
		"first failure GET /v1/events?type=x: HTTP 500: boom",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("text lacks the line %q:\n%s", want, out)
		}
	}
}
