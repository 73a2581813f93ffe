package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
	"github.com/heraldhq/herald/sqlite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const acct = "acct-work"

// clock is the engine's clock in tests: real time, plus what the test
// skipped ahead, so that retries after milliseconds happen on their own
// and a cycle an hour away can be made due at once.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset).UTC()
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// env is one test's database, export directory and clock.
type env struct {
	t     *testing.T
	path  string
	store *sqlite.Store
	root  string
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "herald.db")
	store, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := t.Context()
	if err := store.CreateAccount(ctx, &herald.Account{ID: acct, Name: "Work tests", CreatedAt: time.Now().UTC()}, nil); err != nil {
		t.Fatal(err)
	}
	// No journey events: the tests count the events they append.
	settings := herald.DefaultSettings()
	settings.JourneyEvents = herald.JourneyEvents{}
	if err := store.PutSettings(ctx, acct, settings); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, path: path, store: store, root: filepath.Join(dir, "exports"), clock: &clock{}}
}

// start starts an engine on store (the env's when nil); t's cleanup
// closes it.
func (v *env) start(store Store, opts Options) *Engine {
	v.t.Helper()
	if store == nil {
		store = v.store
	}
	opts.Store = store
	opts.Export.Root = v.root
	opts.Export.AllowPrivate = true
	if opts.Now == nil {
		opts.Now = v.clock.Now
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 300 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 20 * time.Millisecond
	}
	e, err := New(opts)
	if err != nil {
		v.t.Fatal(err)
	}
	e.Start()
	v.t.Cleanup(func() {
		if err := e.Close(); err != nil {
			v.t.Error(err)
		}
	})
	return e
}

// create stores w as the API would: defaults set, validated unless it
// uses test-only waits.
func (v *env) create(w *herald.Work) *herald.Work {
	v.t.Helper()
	w.AccountID = acct
	if w.ID == "" {
		w.ID = herald.NewRandomID("work_")
	}
	w.SetDefaults()
	if err := v.store.CreateWork(v.t.Context(), w); err != nil {
		v.t.Fatalf("CreateWork: %v", err)
	}
	return w
}

func (v *env) find(id string) *herald.Work {
	v.t.Helper()
	w, err := v.store.FindWork(v.t.Context(), acct, id)
	if err != nil {
		v.t.Fatalf("FindWork(%s): %v", id, err)
	}
	return w
}

// waitWork polls the stored job until cond holds.
func (v *env) waitWork(id string, what string, cond func(w *herald.Work) bool) *herald.Work {
	v.t.Helper()
	var w *herald.Work
	waitFor(v.t, 15*time.Second, func() (bool, string) {
		w = v.find(id)
		rt, _ := json.Marshal(w.Runtime)
		return cond(w), fmt.Sprintf("%s: state %s (%s), runtime %s", what, w.State, w.StateReason, rt)
	})
	return w
}

// appendAt stores events built from fields, received at at, and returns
// them as stored.
func (v *env) appendAt(at time.Time, fields ...map[string]any) []*herald.Event {
	v.t.Helper()
	var events []*herald.Event
	for _, f := range fields {
		b, err := json.Marshal(f)
		if err != nil {
			v.t.Fatal(err)
		}
		e, err := herald.ParseEvent(b)
		if err != nil {
			v.t.Fatalf("ParseEvent(%s): %v", b, err)
		}
		e.Complete(at, herald.OriginAPI, herald.NewEventID)
		events = append(events, e)
	}
	batch := &herald.AppendBatch{AccountID: acct, Events: events}
	if err := v.store.AppendEvents(v.t.Context(), []*herald.AppendBatch{batch}); err != nil {
		v.t.Fatalf("AppendEvents: %v", err)
	}
	for i, r := range batch.Results {
		if r.Err != nil {
			v.t.Fatalf("AppendEvents: event %d: %v", i, r.Err)
		}
	}
	return events
}

// transfers appends n transfers/single events now.
func (v *env) transfers(n int) []*herald.Event {
	v.t.Helper()
	fields := make([]map[string]any, n)
	for i := range fields {
		fields[i] = map[string]any{"category": "transfers", "type": "single", "data": map[string]any{"n": i, "amount": 12.5}}
	}
	return v.appendAt(v.clock.Now(), fields...)
}

// logins appends n events that the transfer filters drop.
func (v *env) logins(n int) []*herald.Event {
	v.t.Helper()
	fields := make([]map[string]any, n)
	for i := range fields {
		fields[i] = map[string]any{"category": "authentication", "type": "userLoggedIn", "data": map[string]any{"n": i}}
	}
	return v.appendAt(v.clock.Now(), fields...)
}

func (v *env) lastSeq() int64 {
	v.t.Helper()
	n, err := v.store.LastSeq(v.t.Context(), acct)
	if err != nil {
		v.t.Fatal(err)
	}
	return n
}

// audit returns the system events about job id, oldest first.
func (v *env) audit(id string) []*herald.Event {
	v.t.Helper()
	list, err := v.store.FindEvents(v.t.Context(), acct, herald.EventFilter{
		Origin: herald.OriginSystem, Category: herald.SubjectWork, PrimaryID: id, Limit: 10000,
	})
	if err != nil {
		v.t.Fatal(err)
	}
	return list
}

// verbs counts the verbs of the system events about job id.
func (v *env) verbs(id string) map[string]int {
	v.t.Helper()
	n := map[string]int{}
	for _, e := range v.audit(id) {
		n[e.Type]++
	}
	return n
}

// notes returns the notes of the system events of verb about job id.
func (v *env) notes(id, verb string) []string {
	v.t.Helper()
	var out []string
	for _, e := range v.audit(id) {
		if e.Type != verb {
			continue
		}
		var d struct {
			Notes string `json:"notes"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil {
			v.t.Fatal(err)
		}
		out = append(out, d.Notes)
	}
	return out
}

func (v *env) records(id string) []*herald.WorkRecord {
	v.t.Helper()
	list, err := v.store.FindWorkRecords(v.t.Context(), acct, id, herald.WorkRecordFilter{Limit: 1000})
	if err != nil {
		v.t.Fatal(err)
	}
	slices.Reverse(list)
	return list
}

// waitFor polls cond until it holds, failing with what it last said.
func waitFor(t *testing.T, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashStore stops saving once crash says so, as a process that died
// there would: the save that crash picked and every later one fail.
type crashStore struct {
	*sqlite.Store
	mu      sync.Mutex
	crash   func(p *herald.WorkProgress) bool
	crashed bool
}

func (s *crashStore) SaveWorkProgress(ctx context.Context, p *herald.WorkProgress) error {
	s.mu.Lock()
	if !s.crashed && s.crash(p) {
		s.crashed = true
	}
	crashed := s.crashed
	s.mu.Unlock()
	if crashed {
		return errors.New("simulated crash")
	}
	return s.Store.SaveWorkProgress(ctx, p)
}

func (s *crashStore) hasCrashed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crashed
}

// request is one request a receiver got.
type request struct {
	header http.Header
	body   []byte
	status int
}

// receiver is an HTTP endpoint; respond decides each answer from how many
// requests came before.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	respond func(n int) int
}

func newReceiver(t *testing.T, respond func(n int) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		status := http.StatusOK
		if rc.respond != nil {
			status = rc.respond(n)
		}
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: body, status: status})
		rc.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func dur(d time.Duration) herald.Duration { return herald.Duration(d) }

func schedule(n int, d time.Duration) []herald.Duration {
	s := make([]herald.Duration, n)
	for i := range s {
		s[i] = dur(d)
	}
	return s
}

// Both stores serve the engine.
var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
	_ Store = (*crashStore)(nil)
)
