package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testKey = "hk_test_0123456789"

// fake is an in-memory Herald: just enough of the API for the benchmarks,
// checking every event with the real envelope parser.
type fake struct {
	t   *testing.T
	srv *httptest.Server

	// failItem, if set, fails the batch item at that index.
	failItem func(index int) bool
	// status, if set, answers every request with it.
	status int
	// seqStep spaces seqs apart, as a store with gaps would (default 1).
	seqStep int64
	// onRequest, if set, runs before each request is served.
	onRequest func(n int64)

	requests, singles, batches, queries atomic.Int64

	mu      sync.Mutex
	events  []*herald.Event // in seq order
	byID    map[string]*herald.Event
	seq     int64
	queried []string // raw query strings of GET /v1/events
	empty   []string // filtered queries that found nothing
}

func newFake(t *testing.T) *fake {
	f := &fake{t: t, byID: map[string]*herald.Event{}, seqStep: 1}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	if f.onRequest != nil {
		f.onRequest(n)
	}
	if r.Header.Get("Authorization") != "Bearer "+testKey {
		problem(w, http.StatusUnauthorized, "missing or unknown API key")
		return
	}
	if f.status != 0 {
		problem(w, f.status, "the fake is told to fail")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/events":
		f.singles.Add(1)
		f.single(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/events/batch":
		f.batches.Add(1)
		f.batch(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/events":
		f.queries.Add(1)
		f.query(w, r)
	default:
		problem(w, http.StatusNotFound, "no such route")
	}
}

func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"title": http.StatusText(status), "status": status, "detail": detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// store keeps e unless its id is taken, and says which.
func (f *fake) store(e *herald.Event) (seq int64, dup bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.byID[e.ID]; ok {
		if old.Hash != e.Hash {
			f.t.Errorf("event %s sent again with different content", e.ID)
		}
		return old.Seq, true
	}
	f.seq += f.seqStep
	e.Seq = f.seq
	e.Complete(time.Now(), herald.OriginAPI, func() string { return "" })
	body, err := herald.MarshalEvent(e)
	if err != nil {
		f.t.Error(err)
	}
	e.Body = body
	f.events = append(f.events, e)
	f.byID[e.ID] = e
	return e.Seq, false
}

func (f *fake) parse(b []byte) (*herald.Event, error) {
	e, err := herald.ParseEvent(b)
	if err != nil {
		f.t.Errorf("the generator made an invalid event: %v\n%s", err, b)
		return nil, err
	}
	if e.ID == "" {
		f.t.Errorf("event without id: %s", b)
	}
	return e, nil
}

func (f *fake) single(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e, err := f.parse(b)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	seq, dup := f.store(e)
	if dup {
		writeJSON(w, http.StatusOK, map[string]any{"id": e.ID, "seq": seq, "duplicate": true})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": e.ID, "seq": seq, "receivedAt": time.Now()})
}

func (f *fake) batch(w http.ResponseWriter, r *http.Request) {
	var items [][]byte
	if r.Header.Get("Content-Type") == "application/x-ndjson" {
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, herald.MaxBatchBytes)
		for sc.Scan() {
			items = append(items, bytes.Clone(sc.Bytes()))
		}
	} else {
		var body struct{ Events []json.RawMessage }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			problem(w, http.StatusBadRequest, err.Error())
			return
		}
		for _, e := range body.Events {
			items = append(items, e)
		}
	}
	if len(items) > herald.MaxBatchEvents {
		problem(w, http.StatusRequestEntityTooLarge, "too many events")
		return
	}
	var created, dups, failed int
	results := []map[string]any{}
	for i, b := range items {
		e, err := f.parse(b)
		if err == nil && f.failItem != nil && f.failItem(i) {
			err = errors.New("the fake is told to fail this item")
		}
		if err != nil {
			failed++
			results = append(results, map[string]any{"index": i, "problem": map[string]any{"status": 400, "detail": err.Error()}})
			continue
		}
		seq, dup := f.store(e)
		if dup {
			dups++
			results = append(results, map[string]any{"id": e.ID, "seq": seq, "duplicate": true})
		} else {
			created++
			results = append(results, map[string]any{"id": e.ID, "seq": seq})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "created": created, "duplicates": dups, "failed": failed})
}

func (f *fake) query(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			problem(w, http.StatusBadRequest, "limit")
			return
		}
	}
	var after int64
	if s := q.Get("afterSeq"); s != "" {
		var err error
		if after, err = strconv.ParseInt(s, 10, 64); err != nil {
			problem(w, http.StatusBadRequest, "afterSeq")
			return
		}
	}
	for k := range q {
		switch k {
		case "limit", "afterSeq", "type", "coreCustomerId", "eventLifecycleId":
		default:
			f.t.Errorf("query by %s, which the fake does not know", k)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	f.queried = append(f.queried, r.URL.RawQuery)
	var found [][]byte
	hasMore := false
	for _, e := range f.events {
		if e.Seq <= after ||
			q.Has("type") && e.Type != q.Get("type") ||
			q.Has("coreCustomerId") && e.CoreCustomerID != q.Get("coreCustomerId") ||
			q.Has("eventLifecycleId") && e.EventLifecycleID != q.Get("eventLifecycleId") {
			continue
		}
		if len(found) == limit {
			hasMore = true
			break
		}
		found = append(found, e.Body)
	}
	if len(found) == 0 && (q.Has("coreCustomerId") || q.Has("eventLifecycleId")) {
		f.empty = append(f.empty, r.URL.RawQuery)
	}
	// By hand: encoding/json would re-check every stored body, and slowly
	// under -race.
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"events":[%s],"next":"","hasMore":%t}`, bytes.Join(found, []byte(",")), hasMore)
}

// seed stores n events directly, quicker than sending them.
func (f *fake) seed(n int) {
	for i := range n {
		f.store(&herald.Event{ID: fmt.Sprint("seed-", i), Category: "c", Type: "t", Data: json.RawMessage(`{}`)})
	}
}

func (f *fake) stored() []*herald.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*herald.Event(nil), f.events...)
}

func ingestOptions(f *fake, events, batch int) IngestOptions {
	return IngestOptions{
		Options: Options{URL: f.srv.URL, Key: testKey, Concurrency: 4},
		Events:  events,
		Batch:   batch,
	}
}

func TestRunIngest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                string
		events, batch       int
		ndjson              bool
		requests            int64
		singles, batchCalls int64
	}{
		{name: "batch", events: 1050, batch: 100, requests: 11, batchCalls: 11},
		{name: "ndjson", events: 1000, batch: 250, ndjson: true, requests: 4, batchCalls: 4},
		{name: "single", events: 300, batch: 1, requests: 300, singles: 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			o := ingestOptions(f, tc.events, tc.batch)
			o.NDJSON = tc.ndjson
			rep, err := RunIngest(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Name != "ingest" || rep.Unit != "events" {
				t.Errorf("report is %q in %q, want ingest in events", rep.Name, rep.Unit)
			}
			if rep.Ops != int64(tc.events) || rep.Requests != tc.requests {
				t.Errorf("report counts %d events in %d requests, want %d in %d", rep.Ops, rep.Requests, tc.events, tc.requests)
			}
			if got := f.singles.Load(); got != tc.singles {
				t.Errorf("server got %d single requests, want %d", got, tc.singles)
			}
			if got := f.batches.Load(); got != tc.batchCalls {
				t.Errorf("server got %d batch requests, want %d", got, tc.batchCalls)
			}
			if rep.Errors != (Errors{}) || rep.Duplicates != 0 || rep.Interrupted {
				t.Errorf("errors %+v, duplicates %d, interrupted %v; want none", rep.Errors, rep.Duplicates, rep.Interrupted)
			}
			l := rep.Latency
			if !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.Max && l.Mean > 0) {
				t.Errorf("latency %+v is not ordered 0 < p50 ≤ p95 ≤ p99 ≤ max", l)
			}
			if rep.OpsPerSecond <= 0 || rep.RequestsPerSecond <= 0 {
				t.Errorf("rates %g events/s, %g requests/s", rep.OpsPerSecond, rep.RequestsPerSecond)
			}
			if len(rep.Breakdown) != 0 {
				t.Errorf("breakdown %+v for one kind of request", rep.Breakdown)
			}
			if got := len(f.stored()); got != tc.events {
				t.Errorf("server stored %d events, want %d", got, tc.events)
			}
		})
	}
}

// The events look like a bank's: all four types, paired into sessions and
// lifecycles, customers from the pool, data of about 300 bytes.
func TestRunIngestEventsAreRealistic(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	o := ingestOptions(f, 1000, 100)
	o.Customers = 50
	if _, err := RunIngest(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	customers := map[string]bool{}
	lifecycles := map[string][]string{}
	for _, e := range f.stored() {
		types[e.Category+"/"+e.Type]++
		customers[e.CoreCustomerID] = true
		if n := len(e.Data); n < 200 || n > 450 {
			t.Errorf("event %s has %d bytes of data, want about 300", e.ID, n)
		}
		if e.AgentID == "" || e.Host == "" || e.PrimaryID == "" || e.SessionID == "" {
			t.Errorf("event %s lacks agentId, host, primaryId or sessionId", e.ID)
		}
		if e.Type == "transaction" {
			lifecycles[e.EventLifecycleID] = append(lifecycles[e.EventLifecycleID], e.EventStatus)
		}
	}
	for _, typ := range generatedTypes {
		if n := types[typ.category+"/"+typ.typ]; n < 100 {
			t.Errorf("%d events of %s/%s out of 1000, want more", n, typ.category, typ.typ)
		}
	}
	if len(customers) > 50 || len(customers) < 40 {
		t.Errorf("%d distinct customers, want up to the pool of 50", len(customers))
	}
	for id, statuses := range lifecycles {
		if len(statuses) != 2 || !(statuses[0] == "pending" || statuses[1] == "pending") {
			t.Errorf("lifecycle %s has statuses %v, want pending and a decision", id, statuses)
		}
	}
}

func TestRunIngestRerun(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	o := ingestOptions(f, 200, 50)
	for range 2 {
		rep, err := RunIngest(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Duplicates != 0 {
			t.Errorf("a rerun sent %d duplicates, want new events", rep.Duplicates)
		}
	}
	if got := len(f.stored()); got != 400 {
		t.Errorf("two runs stored %d events, want 400", got)
	}

	// The same run id and start send the same events again.
	o.RunID = "again"
	first, err := RunIngest(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Start, err = time.Parse(time.RFC3339Nano, first.Params["start"].(string))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := RunIngest(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops != 200 || rep.Duplicates != 200 {
		t.Errorf("resent run: %d events acknowledged, %d duplicates; want 200 and 200", rep.Ops, rep.Duplicates)
	}
}

func TestRunIngestFailedItems(t *testing.T) {
	t.Parallel()
	t.Run("within budget", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.failItem = func(i int) bool { return i%10 == 3 }
		o := ingestOptions(f, 1000, 100)
		o.MaxErrorRate = 0.2
		rep, err := RunIngest(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Ops != 900 || rep.Errors.Ops != 100 || rep.Errors.Requests != 0 {
			t.Errorf("%d events stored, errors %+v; want 900 stored, 100 failed events, 0 failed requests", rep.Ops, rep.Errors)
		}
		if !strings.HasSuffix(rep.Errors.First, "item 3: the fake is told to fail this item") {
			t.Errorf("first failure %q does not show the item's problem", rep.Errors.First)
		}
	})
	t.Run("over budget", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		f.failItem = func(i int) bool { return i%10 == 3 }
		o := ingestOptions(f, 10000, 100)
		o.Concurrency = 2
		o.MaxErrorRate = 0.01
		rep, err := RunIngest(t.Context(), o)
		if err == nil || !strings.Contains(err.Error(), "--max-error-rate") {
			t.Fatalf("error %v, want one naming --max-error-rate", err)
		}
		if rep == nil || !rep.Interrupted || rep.Ops >= 10000 || rep.Errors.Ops <= 100 {
			t.Errorf("report %+v, want an interrupted partial one with over 100 failed events", rep)
		}
	})
}

func TestFirstFailedItem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{`{"results":[{"id":"a","seq":1},{"id":"b","index":1,"problem":{"status":409,"detail":"id b is taken"}}]}`, "item 1: id b is taken"},
		{`{"results":[{"id":"a","seq":1,"duplicate":true},{"detail":"bad"}]}`, "item 1: bad"},
		{`{"results":[{"id":"a","seq":1},{"error":"odd"}]}`, `item 1: {"error":"odd"}`},
		{`{"results":[{"id":"a","seq":1}]}`, "(no failed result in the response)"},
		{`{"results":7}`, "(results unreadable)"},
	} {
		if got := firstFailedItem([]byte(tc.body)); got != tc.want {
			t.Errorf("firstFailedItem(%s) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

func TestRunIngestServerFails(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		key       string
		status    int
		want      []string
		fewerThan int64 // requests before stopping
	}{
		{name: "wrong key", key: "nope", want: []string{"HTTP 401", "missing or unknown API key", "HERALD_KEY"}, fewerThan: 5},
		{name: "forbidden", key: testKey, status: http.StatusForbidden, want: []string{"HTTP 403", "scope"}, fewerThan: 5},
		{name: "server error", key: testKey, status: http.StatusInternalServerError, want: []string{"HTTP 500", "told to fail", "--max-error-rate"}, fewerThan: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.status = tc.status
			o := ingestOptions(f, 100000, 100)
			o.Key = tc.key
			o.MaxErrorRate = 0.01 // 1,000 events: 10 requests
			rep, err := RunIngest(t.Context(), o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if rep == nil || rep.Requests >= tc.fewerThan || rep.Errors.Requests != rep.Requests || rep.Ops != 0 {
				t.Errorf("report %+v: want all of fewer than %d requests failed", rep, tc.fewerThan)
			}
		})
	}
}

func TestRunIngestCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := newFake(t)
	f.onRequest = func(n int64) {
		if n == 5 {
			cancel()
		}
	}
	rep, err := RunIngest(ctx, ingestOptions(f, 100000, 10))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if rep == nil || !rep.Interrupted || rep.Ops == 0 || rep.Ops > 100 {
		t.Errorf("report %+v, want the partial report of about 5 requests", rep)
	}
	if rep.Errors.Requests != 0 {
		t.Errorf("%d failed requests, want requests cut short by cancelling not counted as failures", rep.Errors.Requests)
	}
}

func TestRunQuery(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.seqStep = 3 // a store may leave gaps
	if _, err := RunIngest(t.Context(), ingestOptions(f, 1000, 200)); err != nil {
		t.Fatal(err)
	}
	rep, err := RunQuery(t.Context(), QueryOptions{
		Options:  Options{URL: f.srv.URL, Key: testKey, Concurrency: 4},
		Requests: 250,
		Seed:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Name != "query" || rep.Unit != "requests" || rep.Ops != 250 || rep.Requests != 250 {
		t.Errorf("report %s: %d %s in %d requests, want query: 250 requests in 250", rep.Name, rep.Ops, rep.Unit, rep.Requests)
	}
	if surveyed := f.queries.Load() - 250; surveyed < 1 || surveyed > 60 {
		t.Errorf("the survey before the run made %d queries, want a few dozen", surveyed)
	}
	if got := rep.Params["storedSeq"]; got != int64(3000) {
		t.Errorf("storedSeq %v, want 3000 (1,000 events, seq step 3)", got)
	}
	var names []string
	for _, b := range rep.Breakdown {
		names = append(names, b.Name)
		if b.Requests != 50 || b.Latency.P99 <= 0 {
			t.Errorf("kind %s: %d requests, p99 %s; want 50 and a latency", b.Name, b.Requests, b.Latency.P99)
		}
	}
	if want := strings.Join(queryNames, ","); strings.Join(names, ",") != want {
		t.Errorf("breakdown %v, want %s", names, want)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.empty) > 0 {
		t.Errorf("%d queries by customer or lifecycle found nothing, such as %s; want values that exist", len(f.empty), f.empty[0])
	}
	seen := map[string]int{}
	for _, q := range f.queried {
		for _, p := range []string{"type=", "coreCustomerId=", "eventLifecycleId=", "afterSeq=", "limit=100"} {
			if strings.Contains(q, p) {
				seen[p]++
			}
		}
	}
	for _, p := range []string{"type=", "coreCustomerId=", "eventLifecycleId=", "afterSeq=", "limit=100"} {
		if seen[p] < 50 {
			t.Errorf("%d queries with %s, want at least 50", seen[p], p)
		}
	}
}

func TestRunQueryNoEvents(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	_, err := RunQuery(t.Context(), QueryOptions{Options: Options{URL: f.srv.URL, Key: testKey}, Requests: 10})
	if err == nil || !strings.Contains(err.Error(), "herald bench ingest") {
		t.Errorf("error %v, want one saying to ingest first", err)
	}
}

func TestSurveyFindsGreatestSeq(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ events, step int64 }{{1, 1}, {2, 1}, {1024, 1}, {1025, 1}, {3000, 7}} {
		t.Run(fmt.Sprint(tc.events, "x", tc.step), func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			f.seqStep = tc.step
			f.seed(int(tc.events))
			s, err := survey(t.Context(), f.srv.Client(), f.srv.URL+"/v1/events?", "Bearer "+testKey)
			if err != nil {
				t.Fatal(err)
			}
			if s.firstSeq != tc.step || s.maxSeq != tc.events*tc.step {
				t.Errorf("seq from %d to %d, want %d to %d", s.firstSeq, s.maxSeq, tc.step, tc.events*tc.step)
			}
		})
	}
}

// lineWriter is a progress writer that signals its first line.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	first chan struct{}
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.once.Do(func() { close(w.first) })
	return w.buf.Write(p)
}

func TestProgress(t *testing.T) {
	t.Parallel()
	for _, terminal := range []bool{false, true} {
		t.Run(fmt.Sprint("terminal=", terminal), func(t *testing.T) {
			t.Parallel()
			w := &lineWriter{first: make(chan struct{})}
			f := newFake(t)
			// Hold the run until a progress line is out, so there is one.
			f.onRequest = func(n int64) {
				if n == 1 {
					select {
					case <-w.first:
					case <-time.After(10 * time.Second):
						t.Error("no progress line within 10s")
					}
				}
			}
			o := ingestOptions(f, 100, 10)
			o.Progress, o.ProgressInterval, o.Terminal = w, time.Millisecond, terminal
			if _, err := RunIngest(t.Context(), o); err != nil {
				t.Fatal(err)
			}
			out := w.buf.String()
			if !strings.Contains(out, "/100 events") || !strings.Contains(out, "events/s") {
				t.Errorf("progress %q lacks the count and rate", out)
			}
			if terminal != strings.HasPrefix(out, "\r\033[K") {
				t.Errorf("terminal %v, progress %q", terminal, out)
			}
			if !strings.HasSuffix(out, "\n") {
				t.Errorf("progress %q does not end its line", out)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := IngestOptions{Options: Options{URL: "http://h:1", Key: "k"}, Events: 1, Batch: 1}
	for _, tc := range []struct {
		want   string
		change func(*IngestOptions)
	}{
		{"--url", func(o *IngestOptions) { o.URL = "127.0.0.1:8080" }},
		{"--key", func(o *IngestOptions) { o.Key = "" }},
		{"--concurrency", func(o *IngestOptions) { o.Concurrency = -1 }},
		{"--max-error-rate", func(o *IngestOptions) { o.MaxErrorRate = 2 }},
		{"--events", func(o *IngestOptions) { o.Events = 0 }},
		{"--batch", func(o *IngestOptions) { o.Batch = 1001 }},
		{"--run-id", func(o *IngestOptions) { o.RunID = "a/b" }},
	} {
		o := ok
		tc.change(&o)
		_, err := RunIngest(t.Context(), o)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want+":") {
			t.Errorf("error %v, want one starting %s:", err, tc.want)
		}
	}
	_, err := RunQuery(t.Context(), QueryOptions{Options: Options{URL: "http://h:1", Key: "k"}})
	if err == nil || !strings.HasPrefix(err.Error(), "--requests:") {
		t.Errorf("error %v, want one starting --requests:", err)
	}
}
