package work

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald"
)

// exported reads every file of dir and returns how often each event id
// appears in them, and the file names.
func exported(t *testing.T, dir string) (map[string]int, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	var names []string
	for _, de := range entries {
		if strings.HasPrefix(de.Name(), ".") {
			t.Errorf("temporary file left: %s", de.Name())
			continue
		}
		names = append(names, de.Name())
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(de.Name()) {
		case ".ndjson":
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("%s: %q: %v", de.Name(), sc.Text(), err)
				}
				ids[e.ID]++
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
		case ".csv":
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatalf("%s: %v", de.Name(), err)
			}
			col := slices.Index(rows[0], "id")
			if col < 0 {
				t.Fatalf("%s: no id column in %v", de.Name(), rows[0])
			}
			for _, row := range rows[1:] {
				ids[row[col]]++
			}
		default:
			t.Fatalf("unexpected file %s", de.Name())
		}
		f.Close()
	}
	return ids, names
}

// exactlyOnce fails unless got holds each id of want once, and no other.
func exactlyOnce(t *testing.T, got map[string]int, want []*herald.Event) {
	t.Helper()
	wantIDs := map[string]bool{}
	for _, e := range want {
		wantIDs[e.ID] = true
		if got[e.ID] != 1 {
			t.Errorf("event %s (seq %d) exported %d times, want once", e.ID, e.Seq, got[e.ID])
		}
	}
	for id, n := range got {
		if !wantIDs[id] {
			t.Errorf("event %s exported %d times, want none", id, n)
		}
	}
}

// TestBatchExportExactlyOnce: a continuous batch export to NDJSON files
// runs cycles by its schedule and on demand; a crash after a unit was
// written but before it was saved, and a restart on another engine, leave
// every matching event in exactly one file, and the events stored after
// the crash go to the next cycle, not to the one resumed.
func TestBatchExportExactlyOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	var want []*herald.Event
	want = append(want, v.transfers(5)...)
	v.logins(2)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Name: "transfers to files",
		Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportBatch, Every: dur(time.Hour), BatchSize: 3,
			Destination: herald.Destination{Type: herald.DestinationFiles, Dir: "audit/transfers", Format: herald.FormatNDJSON},
		},
	})
	cs := &crashStore{Store: v.store, crash: func(*herald.WorkProgress) bool { return false }}
	e1 := v.start(cs, Options{Owner: "node-1"})
	cycles := func(n int64) func(w *herald.Work) bool {
		return func(w *herald.Work) bool { return w.Runtime.Cycles == n && w.Runtime.Pending == nil }
	}

	// The first cycle runs at once; the next ones by the schedule.
	w := v.waitWork(job.ID, "first cycle", cycles(1))
	if w.Runtime.Events != 5 || w.Runtime.Units != 2 || w.Runtime.NextRunAt == nil {
		t.Fatalf("after the first cycle: %+v", w.Runtime)
	}
	want = append(want, v.transfers(4)...)
	v.logins(1)
	v.clock.advance(time.Hour)
	v.waitWork(job.ID, "second cycle", cycles(2))

	// Run now, well before the schedule.
	want = append(want, v.transfers(2)...)
	if err := v.store.RunWorkNow(t.Context(), acct, job.ID, v.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e1.Refresh()
	w = v.waitWork(job.ID, "cycle run now", cycles(3))
	if w.Runtime.RanNowAt == nil {
		t.Errorf("RanNowAt not set: %+v", w.Runtime)
	}

	// The fourth cycle crashes once its second unit is written.
	fourth := v.transfers(7)
	want = append(want, fourth...)
	cs.mu.Lock()
	cs.crash = func(p *herald.WorkProgress) bool { return p.Runtime.Pending != nil && p.Runtime.Pending.Units == 2 }
	cs.mu.Unlock()
	v.clock.advance(time.Hour)
	waitFor(t, 10*time.Second, func() (bool, string) { return cs.hasCrashed(), "no crash" })
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	late := v.transfers(2)
	want = append(want, late...)
	w = v.find(job.ID)
	if p := w.Runtime.Pending; p == nil || p.Units != 1 || p.UpTo >= late[0].Seq {
		t.Fatalf("after the crash, pending cycle %+v, want 1 unit saved and UpTo before seq %d", p, late[0].Seq)
	}

	v.start(nil, Options{Owner: "node-2"})
	w = v.waitWork(job.ID, "cycle resumed", cycles(4))
	recs := v.records(job.ID)
	if r := recs[len(recs)-1]; r.Events != 7 || r.Units != 3 || r.UpTo >= late[0].Seq || r.UpTo < fourth[6].Seq {
		t.Errorf("resumed cycle's record %+v: want 7 events in 3 units, up to before seq %d", r, late[0].Seq)
	}
	v.clock.advance(time.Hour)
	w = v.waitWork(job.ID, "fifth cycle", cycles(5))

	got, files := exported(t, filepath.Join(v.root, "audit", "transfers"))
	exactlyOnce(t, got, want)
	// 5 → 3+2, 4 → 3+1, 2, 7 → 3+3+1, 2.
	if len(files) != 9 || w.Runtime.Units != 9 || w.Runtime.Events != int64(len(want)) {
		t.Errorf("%d files %v, runtime %+v; want 9 units of %d events", len(files), files, w.Runtime, len(want))
	}
	wantVerbs := map[string]int{"created": 1, "started": 1, "syncing": 1, "synced": 9, "synccomplete": 5}
	if got := v.verbs(job.ID); !maps.Equal(got, wantVerbs) {
		t.Errorf("system events %v, want %v", got, wantVerbs)
	}
	for _, n := range v.notes(job.ID, herald.VerbSynced) {
		if !strings.HasPrefix(n, "wrote ") || !strings.Contains(n, "audit/transfers/"+job.ID+"-") {
			t.Errorf("synced notes %q", n)
		}
	}
}

// TestOnceExportCSV: a one-time export of the events that occurred in a
// range writes them to CSV files, completes, and writes each verb as
// Lytics does.
func TestOnceExportCSV(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	base := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	var fields []map[string]any
	for i := range 10 {
		fields = append(fields, map[string]any{
			"category": "transfers", "type": "single",
			"occurredAt": base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano),
			"data":       map[string]any{"n": i, "note": "a, \"quoted\"\nline"},
		})
	}
	all := v.appendAt(v.clock.Now(), fields...)
	from, to := base.Add(2*time.Hour), base.Add(7*time.Hour)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Name: "january",
		Filter: herald.Filter{Types: []string{"transfers/*"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportOnce, From: &from, To: &to, BatchSize: 2,
			Destination: herald.Destination{Type: herald.DestinationFiles, Dir: "january", Format: herald.FormatCSV},
		},
	})
	// Two engines: the job runs on one of them, once.
	v.start(nil, Options{Owner: "node-a"})
	v.start(nil, Options{Owner: "node-b"})
	w := v.waitWork(job.ID, "completed", func(w *herald.Work) bool { return w.State == herald.WorkCompleted })
	rt := w.Runtime
	if rt.Cycles != 1 || rt.Units != 3 || rt.Events != 5 || rt.Pending != nil || rt.Syncing || rt.StartedAt == nil {
		t.Errorf("runtime %+v", rt)
	}
	got, files := exported(t, filepath.Join(v.root, "january"))
	exactlyOnce(t, got, all[2:7])
	if len(files) != 3 {
		t.Errorf("files %v, want 3", files)
	}
	recs := v.records(job.ID)
	if len(recs) != 1 || recs[0].State != herald.RecordSucceeded || recs[0].Events != 5 || recs[0].Units != 3 || recs[0].Kind != herald.RecordCycle {
		t.Errorf("records %+v", recs)
	}

	var verbs []string
	for _, e := range v.audit(job.ID) {
		verbs = append(verbs, e.Type)
	}
	wantVerbs := []string{"created", "started", "syncing", "synced", "synced", "synced", "synccomplete", "completed"}
	if !slices.Equal(verbs, wantVerbs) {
		t.Errorf("system events %v, want %v", verbs, wantVerbs)
	}
	if n := v.notes(job.ID, herald.VerbCompleted); len(n) != 1 || !strings.Contains(n[0], "5 events in 3 units") {
		t.Errorf("completed notes %q", n)
	}
}

// TestPostgresExportRetriedUnit: a unit written to a PostgreSQL table and
// written again after a crash, before its progress was saved, leaves no
// duplicate row.
func TestPostgresExportRetriedUnit(t *testing.T) {
	dsn := os.Getenv("HERALD_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HERALD_TEST_POSTGRES is not set: set it to a PostgreSQL URL to run the PostgreSQL export test")
	}
	t.Parallel()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(t.Context()) })
	schema := "work_test_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(t.Context(), "DROP SCHEMA "+schema+" CASCADE") })

	v := newEnv(t)
	events := v.transfers(6)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportOnce, BatchSize: 2,
			Destination: herald.Destination{Type: herald.DestinationPostgres, DSN: dsn, Table: schema + ".events"},
		},
	})
	cs := &crashStore{Store: v.store, crash: func(p *herald.WorkProgress) bool {
		return p.Runtime.Pending != nil && p.Runtime.Pending.Units == 2
	}}
	e1 := v.start(cs, Options{Owner: "node-1"})
	waitFor(t, 10*time.Second, func() (bool, string) { return cs.hasCrashed(), "no crash" })
	if err := e1.Close(); err != nil {
		t.Fatal(err)
	}
	rows := func() (n, distinct int) {
		t.Helper()
		if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT id) FROM "+schema+".events").Scan(&n, &distinct); err != nil {
			t.Fatal(err)
		}
		return n, distinct
	}
	if n, _ := rows(); n != 4 {
		t.Fatalf("%d rows after the crash, want the 4 of two units", n)
	}
	v.start(nil, Options{Owner: "node-2"})
	w := v.waitWork(job.ID, "completed", func(w *herald.Work) bool { return w.State == herald.WorkCompleted })
	if n, distinct := rows(); n != 6 || distinct != 6 || w.Runtime.Events != 6 {
		t.Errorf("%d rows (%d ids), runtime %+v; want 6", n, distinct, w.Runtime)
	}
	var seqs []int64
	r, err := conn.Query(ctx, "SELECT seq FROM "+schema+".events ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s int64
		if err := r.Scan(&s); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, s)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if i >= len(seqs) || seqs[i] != e.Seq {
			t.Fatalf("seqs in the table %v, want those of the events", seqs)
		}
	}
}

// webhookBatch is the body of a webhook export unit.
type webhookBatch struct {
	Work   string            `json:"work"`
	Events []json.RawMessage `json:"events"`
}

// TestWebhookExportRetries: a unit the receiver refuses with 500 is sent
// again, with the same webhook-id and signature scheme, until accepted.
func TestWebhookExportRetries(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, func(n int) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	events := v.transfers(3)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportOnce, BatchSize: 10, RetrySchedule: schedule(3, 20*time.Millisecond),
			Destination: herald.Destination{Type: herald.DestinationWebhook, URL: rc.srv.URL + "/export", Headers: map[string]string{"X-Token": "t0ken-123"}},
		},
	})
	v.start(nil, Options{})
	w := v.waitWork(job.ID, "completed", func(w *herald.Work) bool { return w.State == herald.WorkCompleted })
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 2 refused and 1 accepted", len(reqs))
	}
	hook, err := standardwebhooks.NewWebhook(job.Secret)
	if err != nil {
		t.Fatal(err)
	}
	wantID := fmt.Sprintf("%s-%d-%d", job.ID, events[0].Seq, events[2].Seq)
	for i, r := range reqs {
		if got := r.header.Get("webhook-id"); got != wantID {
			t.Errorf("request %d: webhook-id %q, want %q", i, got, wantID)
		}
		if r.header.Get("X-Token") != "t0ken-123" {
			t.Errorf("request %d: header X-Token %q", i, r.header.Get("X-Token"))
		}
		if err := hook.Verify(r.body, r.header); err != nil {
			t.Errorf("request %d: signature: %v", i, err)
		}
	}
	var batch webhookBatch
	if err := json.Unmarshal(reqs[2].body, &batch); err != nil {
		t.Fatal(err)
	}
	if batch.Work != job.ID || len(batch.Events) != 3 {
		t.Fatalf("body %s", reqs[2].body)
	}
	for i, e := range events {
		if string(batch.Events[i]) != string(e.Body) {
			t.Errorf("event %d: %s, want the stored body %s", i, batch.Events[i], e.Body)
		}
	}
	if w.Runtime.Failures != 0 || v.verbs(job.ID)["failed"] != 0 {
		t.Errorf("runtime %+v, verbs %v: retried failures are not failures", w.Runtime, v.verbs(job.ID))
	}
}

// TestPermanentFailureThenResume: a unit the receiver refuses for good
// fails the job at once (failed with the reason in notes); resumed, the
// job writes the unit again and completes.
func TestPermanentFailureThenResume(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	var fixed atomic.Bool
	rc := newReceiver(t, func(int) int {
		if fixed.Load() {
			return http.StatusOK
		}
		return http.StatusBadRequest
	})
	events := v.transfers(2)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportOnce, BatchSize: 10, RetrySchedule: schedule(5, time.Hour),
			Destination: herald.Destination{Type: herald.DestinationWebhook, URL: rc.srv.URL},
		},
	})
	e := v.start(nil, Options{})
	w := v.waitWork(job.ID, "failed", func(w *herald.Work) bool { return w.State == herald.WorkFailed })
	if !strings.Contains(w.StateReason, "400") || w.Runtime.Pending == nil || w.Runtime.Failures != 1 || w.Runtime.Syncing {
		t.Errorf("failed job: reason %q, runtime %+v", w.StateReason, w.Runtime)
	}
	if n := v.notes(job.ID, herald.VerbFailed); len(n) != 1 || n[0] != w.StateReason {
		t.Errorf("failed notes %q, want the reason %q", n, w.StateReason)
	}
	if recs := v.records(job.ID); len(recs) != 1 || recs[0].State != herald.RecordFailed || recs[0].Error != w.StateReason || recs[0].Attempts != 1 {
		t.Errorf("records %+v", recs)
	}

	fixed.Store(true)
	if err := v.store.SetWorkState(t.Context(), acct, job.ID, herald.WorkActive, ""); err != nil {
		t.Fatal(err)
	}
	e.Refresh()
	w = v.waitWork(job.ID, "completed", func(w *herald.Work) bool { return w.State == herald.WorkCompleted })
	if w.Runtime.Events != 2 {
		t.Errorf("runtime %+v", w.Runtime)
	}
	reqs := rc.requests()
	var batch webhookBatch
	if err := json.Unmarshal(reqs[len(reqs)-1].body, &batch); err != nil || len(batch.Events) != len(events) {
		t.Errorf("last request %s: %v", reqs[len(reqs)-1].body, err)
	}
	var verbs []string
	for _, e := range v.audit(job.ID) {
		verbs = append(verbs, e.Type)
	}
	// The resume (updated, by the store) starts a new series: syncing again.
	want := []string{"created", "started", "syncing", "failed", "updated", "syncing", "synced", "synccomplete", "completed"}
	if !slices.Equal(verbs, want) {
		t.Errorf("system events %v, want %v", verbs, want)
	}
}

// holds reports whether e runs the job.
func (e *Engine) holds(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	r := e.current[jobKey{acct, id}]
	return r != nil && !r.exited()
}

// TestStreamExport: a stream sends matching events as they are stored,
// one request each with a json_template, reports synced and synccomplete
// at most once per Every, and after a pause and a resume sends what was
// stored meanwhile, writing syncing again.
func TestStreamExport(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	v.transfers(2) // before the job: a stream starts now
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportStream, Every: dur(time.Hour), BatchSize: 1,
			Destination: herald.Destination{
				Type: herald.DestinationWebhook, URL: rc.srv.URL,
				JSONTemplate: `{"id": event.id, "n": event.data.n}`,
			},
		},
	})
	e := v.start(nil, Options{})
	waitRequests := func(n int) []request {
		t.Helper()
		waitFor(t, 10*time.Second, func() (bool, string) {
			got := len(rc.requests())
			return got >= n, fmt.Sprintf("%d of %d requests", got, n)
		})
		return rc.requests()
	}
	waitFor(t, 10*time.Second, func() (bool, string) { return e.holds(job.ID), "not held" })

	var sent []*herald.Event
	sent = append(sent, v.transfers(3)...)
	e.Notify(acct)
	v.waitWork(job.ID, "first report", func(w *herald.Work) bool { return w.Runtime.Cycles == 1 })
	sent = append(sent, v.transfers(2)...)
	e.Notify(acct)
	v.waitWork(job.ID, "sent", func(w *herald.Work) bool { return w.Runtime.Events == 5 && w.Runtime.Pending == nil })
	if got := v.verbs(job.ID); got["synced"] != 1 || got["synccomplete"] != 1 {
		t.Errorf("system events %v: a stream reports once per every", got)
	}
	v.clock.advance(time.Hour)
	v.waitWork(job.ID, "second report", func(w *herald.Work) bool { return w.Runtime.Cycles == 2 })
	recs := v.records(job.ID)
	if len(recs) != 2 || recs[0].Events != 3 || recs[1].Events != 2 || recs[1].Units != 2 {
		t.Errorf("records %+v", recs)
	}

	if err := v.store.SetWorkState(t.Context(), acct, job.ID, herald.WorkPaused, "maintenance"); err != nil {
		t.Fatal(err)
	}
	e.Refresh()
	waitFor(t, 10*time.Second, func() (bool, string) { return !e.holds(job.ID), "still held after the pause" })
	sent = append(sent, v.transfers(2)...)
	if err := v.store.SetWorkState(t.Context(), acct, job.ID, herald.WorkActive, ""); err != nil {
		t.Fatal(err)
	}
	e.Refresh()
	reqs := waitRequests(len(sent))
	w := v.waitWork(job.ID, "sent after resume", func(w *herald.Work) bool { return w.Runtime.Events == 7 && w.Runtime.Pending == nil })
	if !w.Runtime.Syncing {
		t.Errorf("runtime %+v: syncing after the resume", w.Runtime)
	}
	if len(reqs) != len(sent) {
		t.Fatalf("%d requests, want %d", len(reqs), len(sent))
	}
	for i, ev := range sent {
		var body struct {
			ID string `json:"id"`
			N  int    `json:"n"`
		}
		if err := json.Unmarshal(reqs[i].body, &body); err != nil || body.ID != ev.ID {
			t.Errorf("request %d: %s (%v), want event %s rendered", i, reqs[i].body, err, ev.ID)
		}
		if id, want := reqs[i].header.Get("webhook-id"), fmt.Sprintf("%s-%d-%d", job.ID, ev.Seq, ev.Seq); id != want {
			t.Errorf("request %d: webhook-id %q, want %q", i, id, want)
		}
	}
	if got := v.verbs(job.ID); got["syncing"] != 2 || got["started"] != 1 {
		t.Errorf("system events %v: syncing again after the resume", got)
	}
}

// TestPauseResumeUnnoticed: a job paused and resumed between two looks
// of the engine, while its runner saved nothing, still starts a new
// series: the listing shows the store reset syncing.
func TestPauseResumeUnnoticed(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	job := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportBatch, Every: dur(time.Hour), BatchSize: 10,
			Destination: herald.Destination{Type: herald.DestinationFiles, Dir: "out", Format: herald.FormatNDJSON},
		},
	})
	// Leases renewed every 20 minutes: only Refresh makes the engine look.
	e := v.start(nil, Options{LeaseTTL: time.Hour})
	v.waitWork(job.ID, "first cycle", func(w *herald.Work) bool { return w.Runtime.Cycles == 1 })
	for _, state := range []string{herald.WorkPaused, herald.WorkActive} {
		if err := v.store.SetWorkState(t.Context(), acct, job.ID, state, ""); err != nil {
			t.Fatal(err)
		}
	}
	e.Refresh()
	v.waitWork(job.ID, "syncing again", func(w *herald.Work) bool { return w.Runtime.Syncing && v.verbs(job.ID)["syncing"] == 2 })
	if got := v.verbs(job.ID); got["syncing"] != 2 || got["synccomplete"] != 1 {
		t.Errorf("system events %v", got)
	}
}
