package workflow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/catalog"
	"github.com/heraldhq/herald/notify"
	"github.com/heraldhq/herald/notify/notifytest"
	"github.com/heraldhq/herald/sqlite"
	"github.com/heraldhq/herald/workflow"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const acct = "acme"

// Secrets the logs must never show.
const (
	headerSecret = "Bearer s3cret-header-value"
)

// env is one account in a SQLite database, with the ingest path the
// server has: events checked by the catalog, appended, and the engines
// told.
type env struct {
	path  string
	store *sqlite.Store
	cat   *catalog.Catalog
	app   *appender
	logs  *syncBuffer
	// secrets must never be in the logs.
	secrets []string
}

// appender is the store's append followed by a word to the engines, as
// cmd/herald's notifyingStore does.
type appender struct {
	store   *sqlite.Store
	mu      sync.Mutex
	engines []*workflow.Engine
}

func (a *appender) Append(ctx context.Context, b *herald.AppendBatch) error {
	if err := a.store.AppendEvents(ctx, []*herald.AppendBatch{b}); err != nil {
		return err
	}
	a.mu.Lock()
	engines := slices.Clone(a.engines)
	a.mu.Unlock()
	for _, e := range engines {
		e.Notify(b.AccountID)
	}
	return nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.db")
	s := openStore(t, path)
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: acct, Name: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	v := &env{path: path, store: s, cat: catalog.New(s, s, catalog.Options{TTL: -1}), app: &appender{store: s}, logs: &syncBuffer{}}
	t.Cleanup(func() {
		logs := v.logs.String()
		for _, secret := range append(v.secrets, headerSecret, "s3cret-header") {
			if strings.Contains(logs, secret) {
				t.Errorf("the logs show a secret %q:\n%s", secret, logs)
			}
		}
		if t.Failed() {
			t.Logf("engine logs:\n%s", logs)
		}
	})
	return v
}

// engine starts an engine on store (default: the env's) with short
// intervals; it is closed at the end of the test.
func (v *env) engine(t *testing.T, store workflow.Store, owner string) *workflow.Engine {
	t.Helper()
	if store == nil {
		store = v.store
	}
	e, err := workflow.New(workflow.Options{
		Store:        store,
		Catalog:      v.cat,
		Appender:     v.app,
		Sender:       notify.New(notify.Options{AllowPrivate: true}),
		Owner:        owner,
		Logger:       slog.New(slog.NewTextHandler(v.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LeaseTTL:     time.Second,
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	v.app.mu.Lock()
	v.app.engines = append(v.app.engines, e)
	v.app.mu.Unlock()
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// ingest appends an event as the API would and returns it stored.
func (v *env) ingest(t *testing.T, raw string) *herald.Event {
	t.Helper()
	e, err := herald.ParseEvent([]byte(raw))
	if err != nil {
		t.Fatalf("ParseEvent(%s): %v", raw, err)
	}
	e.Complete(time.Now(), herald.OriginAPI, herald.NewEventID)
	e.AccountID = acct
	if err := v.cat.Prepare(t.Context(), acct, e); err != nil {
		t.Fatalf("Prepare(%s): %v", raw, err)
	}
	if err := e.PrepareBody(); err != nil {
		t.Fatal(err)
	}
	b := &herald.AppendBatch{AccountID: acct, Events: []*herald.Event{e}}
	if err := v.app.Append(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if err := b.Results[0].Err; err != nil {
		t.Fatalf("append %s: %v", raw, err)
	}
	e.Seq = b.Results[0].Seq
	return e
}

// create stores w (validated as the API does) and tells the engines.
func (v *env) create(t *testing.T, w *herald.Workflow) *herald.Workflow {
	t.Helper()
	w.AccountID = acct
	w.SetDefaults()
	if err := w.Validate(); err != nil {
		t.Fatalf("workflow %s: %v", w.Name, err)
	}
	if err := v.store.CreateWorkflow(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	v.app.mu.Lock()
	for _, e := range v.app.engines {
		e.Refresh()
	}
	v.app.mu.Unlock()
	got, err := v.store.FindWorkflow(t.Context(), acct, w.Name)
	if err != nil {
		t.Fatal(err)
	}
	return got
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

// runs returns the workflow's runs, oldest first.
func (v *env) runs(t *testing.T, name string) []*herald.WorkflowRun {
	t.Helper()
	list, err := v.store.FindWorkflowRuns(t.Context(), acct, name, herald.RunFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(list)
	return list
}

// waitRuns waits until the workflow has n finished runs and returns its
// runs.
func (v *env) waitRuns(t *testing.T, name string, n int) []*herald.WorkflowRun {
	t.Helper()
	var list []*herald.WorkflowRun
	waitFor(t, 15*time.Second, func() (bool, string) {
		list = v.runs(t, name)
		done := 0
		for _, r := range list {
			if r.Finished() {
				done++
			}
		}
		return done >= n, fmt.Sprintf("%d runs finished of %d, want %d: %s", done, len(list), n, dump(list))
	})
	return list
}

// systemEvents returns the workflow's system events of a verb.
func (v *env) systemEvents(t *testing.T, name, verb string) []*herald.Event {
	t.Helper()
	evs, err := v.store.FindEvents(t.Context(), acct, herald.EventFilter{Category: herald.SubjectWorkflow, PrimaryID: name, Type: verb, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func dump(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// data decodes an event's data.
func data(t *testing.T, e *herald.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatalf("data of %s: %v", e.ID, err)
	}
	return m
}

// received is one request a receiver answered.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint; respond decides each answer from the
// request's number (from 0).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []received
	respond func(r *http.Request, n int) int
}

func newReceiver(t *testing.T, respond func(r *http.Request, n int) int) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		status := http.StatusOK
		if rc.respond != nil {
			status = rc.respond(r, n)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", n)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// verify checks a request's Standard Webhooks signature with secret.
func verify(t *testing.T, secret string, r received) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Errorf("signature of %s: %v", r.body, err)
	}
}

func webhookStep(name, url string, schedule ...herald.Duration) *herald.WorkflowStep {
	s := &herald.WorkflowStep{Name: name, Target: herald.Target{Kind: herald.TargetWebhook, URL: url}}
	if schedule != nil {
		s.RetrySchedule = schedule
	}
	return s
}

// TestFilterTriggersRun checks a run triggered by the workflow's filter:
// a signed webhook whose json_template reads the event, then an email
// whose input reads the webhook's output, and the run's record and
// system events.
func TestFilterTriggersRun(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	smtp := notifytest.NewSMTPServer(t)
	v.secrets = append(v.secrets, smtp.Password)
	rc := newReceiver(t, nil)
	v.engine(t, nil, "node-1")

	hook := webhookStep("notify", rc.srv.URL)
	hook.JSONTemplate = `{order: event.data.order, amount: event.data.amount, customer: event.coreCustomerId}`
	hook.Headers = map[string]string{"Authorization": headerSecret}
	mail := &herald.WorkflowStep{Name: "mail", Target: smtp.Target("herald@example.com", "risk@example.com")}
	mail.Input = `{subject: "Order " + event.data.order + " answered " + steps.notify.status}`
	w := v.create(t, &herald.Workflow{
		Name:   "paid",
		Filter: &herald.Filter{Types: []string{"orderPaid"}},
		Steps:  []*herald.WorkflowStep{hook, mail},
	})

	v.ingest(t, `{"category":"orders","type":"orderCreated","coreCustomerId":"C1","data":{"order":"o-1"}}`)
	paid := v.ingest(t, `{"category":"orders","type":"orderPaid","coreCustomerId":"C1","data":{"order":"o-1","amount":"12.50"}}`)

	runs := v.waitRuns(t, "paid", 1)
	if len(runs) != 1 {
		t.Fatalf("runs = %s, want 1 (orderCreated does not match)", dump(runs))
	}
	r := runs[0]
	if r.State != herald.RunCompleted || r.EventID != paid.ID || r.Seq != paid.Seq || r.Trigger != herald.TriggerFilter || r.Depth != 1 || r.Step != 2 {
		t.Errorf("run = %s", dump(r))
	}
	if len(r.Steps) != 2 || r.Steps[0].State != herald.StepSucceeded || r.Steps[0].Attempts != 1 || r.Steps[1].State != herald.StepSucceeded {
		t.Fatalf("steps = %s", dump(r.Steps))
	}
	var out struct {
		Status   int    `json:"status"`
		Response string `json:"response"`
	}
	if err := json.Unmarshal(r.Steps[0].Output, &out); err != nil || out.Status != 200 || out.Response != "answer 0" {
		t.Errorf("webhook output = %s (%v)", r.Steps[0].Output, err)
	}

	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	verify(t, w.Secret, reqs[0])
	if got, want := string(reqs[0].body), `{"amount":"12.50","customer":"C1","order":"o-1"}`; got != want {
		t.Errorf("body = %s, want %s", got, want)
	}
	if got := reqs[0].header.Get("Authorization"); got != headerSecret {
		t.Errorf("Authorization = %q", got)
	}
	if got, want := reqs[0].header.Get("webhook-id"), r.ID+"-notify"; got != want {
		t.Errorf("webhook-id = %q, want %q", got, want)
	}

	mails := smtp.Wait(t, 1)
	if m := mails[0]; m.Subject != "Order o-1 answered 200" || !slices.Equal(m.To, []string{"risk@example.com"}) || !strings.Contains(m.Text, paid.ID) {
		t.Errorf("mail = %+v", m)
	}

	started, completed := v.systemEvents(t, "paid", herald.VerbStarted), v.systemEvents(t, "paid", herald.VerbCompleted)
	if len(started) != 1 || len(completed) != 1 {
		t.Fatalf("started %d, completed %d system events, want 1 each", len(started), len(completed))
	}
	if d := data(t, started[0]); d["notes"] != fmt.Sprintf("run %s for event %s", r.ID, paid.ID) || d["runId"] != r.ID || d["eventId"] != paid.ID || d["depth"] != 1.0 {
		t.Errorf("started data = %v", d)
	}
	for _, e := range append(started, completed...) {
		if e.AgentType != herald.AgentTypeWorkflow || e.AgentID != r.ID {
			t.Errorf("system event %s/%s by %s %s, want the run", e.Category, e.Type, e.AgentType, e.AgentID)
		}
	}
}

// TestStatusRuleTriggersRun checks a run triggered by the status of the
// event's type naming the workflow, and none for another status.
func TestStatusRuleTriggersRun(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	if _, err := v.cat.PutEventType(t.Context(), &herald.EventType{
		AccountID: acct, Category: "risk", Type: "alertRaised",
		Statuses: []herald.StatusDef{
			{Name: "flagged", Description: "needs review", Workflows: []string{"review"}},
			{Name: "cleared", Description: "fine"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{Name: "review", Steps: []*herald.WorkflowStep{webhookStep("tell", rc.srv.URL)}})

	v.ingest(t, `{"category":"risk","type":"alertRaised","eventStatus":"cleared","coreCustomerId":"C1"}`)
	flagged := v.ingest(t, `{"category":"risk","type":"alertRaised","eventStatus":"flagged","coreCustomerId":"C1"}`)
	runs := v.waitRuns(t, "review", 1)
	if len(runs) != 1 || runs[0].EventID != flagged.ID || runs[0].Trigger != herald.TriggerStatus || runs[0].State != herald.RunCompleted {
		t.Fatalf("runs = %s, want one for %s by status", dump(runs), flagged.ID)
	}
	// Without a template the webhook carries the event and the run.
	var body struct {
		Workflow string       `json:"workflow"`
		Run      string       `json:"run"`
		Event    herald.Event `json:"event"`
	}
	reqs := rc.requests()
	if len(reqs) != 1 || json.Unmarshal(reqs[0].body, &body) != nil || body.Workflow != "review" || body.Run != runs[0].ID || body.Event.ID != flagged.ID {
		t.Errorf("requests = %d, body %s", len(reqs), reqs[0].body)
	}
}

// TestStepRetriedThenSucceeds checks that a step that fails is tried
// again on its schedule, with the same webhook-id, until it succeeds.
func TestStepRetriedThenSucceeds(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, func(_ *http.Request, n int) int {
		if n < 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	v.engine(t, nil, "node-1")
	second := herald.Duration(time.Second)
	v.create(t, &herald.Workflow{
		Name: "flaky", Filter: &herald.Filter{Types: []string{"ping"}},
		Steps: []*herald.WorkflowStep{webhookStep("call", rc.srv.URL, second, second)},
	})
	v.ingest(t, `{"category":"test","type":"ping"}`)
	r := v.waitRuns(t, "flaky", 1)[0]
	if r.State != herald.RunCompleted || r.Steps[0].Attempts != 3 || r.Steps[0].State != herald.StepSucceeded || r.Steps[0].Error != "" {
		t.Fatalf("run = %s", dump(r))
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3", len(reqs))
	}
	for _, q := range reqs {
		if q.header.Get("webhook-id") != r.ID+"-call" {
			t.Errorf("webhook-id = %q, want %q on every attempt", q.header.Get("webhook-id"), r.ID+"-call")
		}
	}
	if n := len(v.systemEvents(t, "flaky", herald.VerbStarted)); n != 1 {
		t.Errorf("%d started events, want 1 for a run tried three times", n)
	}
}

// TestPermanentFailureFailsRun checks that a 400 fails the run at once,
// with a workflow failed system event naming the step.
func TestPermanentFailureFailsRun(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, func(*http.Request, int) int { return http.StatusBadRequest })
	v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{
		Name: "refused", Filter: &herald.Filter{Types: []string{"ping"}},
		Steps: []*herald.WorkflowStep{webhookStep("call", rc.srv.URL), webhookStep("never", rc.srv.URL)},
	})
	v.ingest(t, `{"category":"test","type":"ping"}`)
	r := v.waitRuns(t, "refused", 1)[0]
	if r.State != herald.RunFailed || r.Step != 0 || r.Steps[0].State != herald.StepFailed || r.Steps[0].Attempts != 1 ||
		r.Steps[1].State != herald.StepPending || !strings.HasPrefix(r.Error, "step call: ") || r.FinishedAt == nil {
		t.Fatalf("run = %s", dump(r))
	}
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	failed := v.systemEvents(t, "refused", herald.VerbFailed)
	if len(failed) != 1 {
		t.Fatalf("%d failed events, want 1", len(failed))
	}
	if d := data(t, failed[0]); d["notes"] != r.Error || d["runId"] != r.ID {
		t.Errorf("failed data = %v, want notes %q", d, r.Error)
	}
}

// TestSetAttributes checks that the attributes a step sets, one of them
// from its input, reach the entity's profile through an event whose agent
// is the run.
func TestSetAttributes(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{
		Name: "tiering", Filter: &herald.Filter{Types: []string{"orderPaid"}},
		Steps: []*herald.WorkflowStep{
			{Name: "gold", Target: herald.Target{Kind: herald.StepSetAttributes}, Attributes: map[string]any{"tier": "gold"}},
			{Name: "last", Target: herald.Target{Kind: herald.StepSetAttributes}, Input: `{attributes: {lastOrder: event.data.order, after: steps.gold.eventId}}`},
		},
	})
	v.ingest(t, `{"category":"orders","type":"orderPaid","coreCustomerId":"C7","data":{"order":"o-9"}}`)
	r := v.waitRuns(t, "tiering", 1)[0]
	if r.State != herald.RunCompleted {
		t.Fatalf("run = %s", dump(r))
	}
	var out struct {
		EventID string `json:"eventId"`
		Seq     int64  `json:"seq"`
	}
	if err := json.Unmarshal(r.Steps[0].Output, &out); err != nil || out.EventID != r.ID+"-gold" || out.Seq == 0 {
		t.Fatalf("output = %s", r.Steps[0].Output)
	}
	e, err := v.store.FindEventByID(t.Context(), acct, out.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if e.Category != "profiles" || e.Type != "profileAttributesSet" || e.CoreCustomerID != "C7" || e.AgentType != herald.AgentTypeWorkflow || e.AgentID != r.ID {
		t.Errorf("event = %s", e.Body)
	}
	p, err := v.store.FindProfile(t.Context(), acct, "C7")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"tier": `"gold"`, "lastOrder": `"o-9"`, "after": fmt.Sprintf("%q", out.EventID)} {
		if got := string(p.Attributes[k].Value); got != want {
			t.Errorf("attribute %s = %s, want %s", k, got, want)
		}
	}
}

// TestEndSession checks that a step ends the session of the login that
// triggered it.
func TestEndSession(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{
		Name: "kick", Filter: &herald.Filter{Types: []string{"userLoggedIn"}},
		Steps: []*herald.WorkflowStep{{Name: "end", Target: herald.Target{Kind: herald.StepEndSession}}},
	})
	v.ingest(t, `{"category":"authentication","type":"userLoggedIn","coreCustomerId":"C3","sessionId":"sess-1"}`)
	r := v.waitRuns(t, "kick", 1)[0]
	if r.State != herald.RunCompleted {
		t.Fatalf("run = %s", dump(r))
	}
	s, err := v.store.FindSessionByID(t.Context(), acct, "sess-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.EndedAt == nil || s.EndReason != herald.EndLogout {
		t.Errorf("session = %s, want ended by logout", dump(s))
	}
	e, err := v.store.FindEventByID(t.Context(), acct, r.ID+"-end")
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != "sessionEnded" || e.SessionID != "sess-1" || e.AgentID != r.ID {
		t.Errorf("event = %s", e.Body)
	}
}

// TestEmitLoopStoppedByDepth checks that a workflow that triggers itself
// by the events it emits stops at maxDepth, with the clear error and a
// failed system event, and triggers nothing more.
func TestEmitLoopStoppedByDepth(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{
		Name: "loop", Filter: &herald.Filter{Types: []string{"ping"}}, MaxDepth: 3,
		Steps: []*herald.WorkflowStep{{Name: "again", Target: herald.Target{Kind: herald.StepEmitEvent},
			Event: json.RawMessage(`{"category":"test","type":"ping","agentType":"customer","agentId":"spoof","data":{"n":1}}`)}},
	})
	v.ingest(t, `{"category":"test","type":"ping"}`)
	runs := v.waitRuns(t, "loop", 4)
	if len(runs) != 4 {
		t.Fatalf("runs = %s", dump(runs))
	}
	for i, r := range runs[:3] {
		if r.State != herald.RunCompleted || r.Depth != i+1 {
			t.Errorf("run %d = %s", i, dump(r))
		}
	}
	last, parent := runs[3], runs[2]
	want := fmt.Sprintf("depth limit: run would be 4 deep, over maxDepth 3 (event %s was emitted by run %s of workflow loop)", parent.ID+"-again", parent.ID)
	if last.State != herald.RunFailed || last.Depth != 4 || last.Error != want || last.EventID != parent.ID+"-again" {
		t.Errorf("last run = %s\nwant error %q", dump(last), want)
	}
	failed := v.systemEvents(t, "loop", herald.VerbFailed)
	if len(failed) != 1 || data(t, failed[0])["notes"] != want {
		t.Errorf("failed events = %s", dump(failed))
	}

	// The reader goes past everything and starts nothing more.
	all, err := v.store.FindEvents(t.Context(), acct, herald.EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	lastSeq := all[len(all)-1].Seq
	waitFor(t, 10*time.Second, func() (bool, string) {
		w, err := v.store.FindWorkflow(t.Context(), acct, "loop")
		if err != nil {
			return false, err.Error()
		}
		return w.Cursor >= lastSeq, fmt.Sprintf("cursor %d, want %d", w.Cursor, lastSeq)
	})
	if n := len(v.runs(t, "loop")); n != 4 {
		t.Errorf("%d runs, want 4", n)
	}
}

// TestRestartResumesRun checks that a run cut short by Close is finished
// by a new engine on the same database, its step tried again.
func TestRestartResumesRun(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, func(r *http.Request, n int) int {
		if n == 0 {
			<-r.Context().Done() // held until the engine gives up
		}
		return http.StatusOK
	})
	first := v.engine(t, nil, "node-1")
	w := v.create(t, &herald.Workflow{
		Name: "slow", Filter: &herald.Filter{Types: []string{"ping"}},
		Steps: []*herald.WorkflowStep{webhookStep("call", rc.srv.URL)},
	})
	v.ingest(t, `{"category":"test","type":"ping"}`)
	waitFor(t, 10*time.Second, func() (bool, string) {
		return len(rc.requests()) == 1, "no request yet"
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if r := v.runs(t, "slow"); len(r) != 1 || r[0].Finished() {
		t.Fatalf("after Close: runs = %s, want one under way", dump(r))
	}

	v.engine(t, openStore(t, v.path), "node-2")
	r := v.waitRuns(t, "slow", 1)[0]
	if r.State != herald.RunCompleted || r.Steps[0].Attempts != 1 {
		t.Fatalf("run = %s, want completed at its first counted attempt", dump(r))
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, q := range reqs {
		verify(t, w.Secret, q)
		if q.header.Get("webhook-id") != r.ID+"-call" {
			t.Errorf("webhook-id = %q", q.header.Get("webhook-id"))
		}
	}
	if n := len(v.systemEvents(t, "slow", herald.VerbStarted)); n != 1 {
		t.Errorf("%d started events, want 1", n)
	}
}

// TestTwoEnginesPerformEachRunOnce checks that two engines sharing a
// database perform each run once.
func TestTwoEnginesPerformEachRunOnce(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	v.engine(t, nil, "node-1")
	v.engine(t, openStore(t, v.path), "node-2")
	for _, name := range []string{"a", "b"} {
		v.create(t, &herald.Workflow{
			Name: name, Filter: &herald.Filter{Types: []string{"ping"}},
			Steps: []*herald.WorkflowStep{webhookStep("one", rc.srv.URL), webhookStep("two", rc.srv.URL)},
		})
	}
	const n = 15
	for i := range n {
		v.ingest(t, fmt.Sprintf(`{"category":"test","type":"ping","data":{"i":%d}}`, i))
	}
	runs := append(v.waitRuns(t, "a", n), v.waitRuns(t, "b", n)...)
	hits := map[string]int{}
	for _, q := range rc.requests() {
		hits[q.header.Get("webhook-id")]++
	}
	if len(runs) != 2*n || len(hits) != 4*n {
		t.Fatalf("%d runs, %d distinct requests; want %d and %d", len(runs), len(hits), 2*n, 4*n)
	}
	for _, r := range runs {
		for _, step := range []string{"one", "two"} {
			if h := hits[r.ID+"-"+step]; h != 1 || r.State != herald.RunCompleted {
				t.Errorf("run %s step %s: %d requests, state %s", r.ID, step, h, r.State)
			}
		}
	}
}

// TestInputMakingStepInvalidFails checks that an input whose output makes
// the step invalid fails the run at once, naming the field, and that the
// metrics count it.
func TestInputMakingStepInvalidFails(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	reg := prometheus.NewRegistry()
	e, err := workflow.New(workflow.Options{Store: v.store, Catalog: v.cat, Appender: v.app, Registerer: reg, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	t.Cleanup(func() { _ = e.Close() })
	v.app.mu.Lock()
	v.app.engines = append(v.app.engines, e)
	v.app.mu.Unlock()
	step := webhookStep("call", "")
	step.Input = `{url: "ftp://" + event.data.host}`
	v.create(t, &herald.Workflow{Name: "bad", Filter: &herald.Filter{Types: []string{"ping"}}, Steps: []*herald.WorkflowStep{step}})
	v.ingest(t, `{"category":"test","type":"ping","data":{"host":"example.com"}}`)
	r := v.waitRuns(t, "bad", 1)[0]
	if r.State != herald.RunFailed || r.Steps[0].Attempts != 1 || !strings.Contains(r.Error, "/steps/0/url") {
		t.Fatalf("run = %s, want failed naming /steps/0/url", dump(r))
	}
	for outcome, want := range map[string]float64{"started": 1, "failed": 1, "completed": 0} {
		if got := counterValue(t, reg, "herald_workflow_runs_total", outcome); got != want {
			t.Errorf("runs %s = %v, want %v", outcome, got, want)
		}
	}
}

// counterValue returns the value of the series of a counter with that
// outcome label (0 if there is none).
func counterValue(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					v = m.GetCounter().GetValue()
				}
			}
		}
	}
	return v
}

// TestPausedWorkflowSkipsTriggers checks that a paused workflow starts no
// run for what is stored meanwhile, and runs again once resumed.
func TestPausedWorkflowSkipsTriggers(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	e := v.engine(t, nil, "node-1")
	v.create(t, &herald.Workflow{
		Name: "quiet", State: herald.WorkflowPaused, Filter: &herald.Filter{Types: []string{"ping"}},
		Steps: []*herald.WorkflowStep{webhookStep("call", rc.srv.URL)},
	})
	skipped := v.ingest(t, `{"category":"test","type":"ping"}`)
	waitFor(t, 10*time.Second, func() (bool, string) {
		w, err := v.store.FindWorkflow(t.Context(), acct, "quiet")
		if err != nil {
			return false, err.Error()
		}
		return w.Cursor >= skipped.Seq, fmt.Sprintf("cursor %d, want %d", w.Cursor, skipped.Seq)
	})
	if err := v.store.SetWorkflowState(t.Context(), acct, "quiet", herald.WorkflowActive); err != nil {
		t.Fatal(err)
	}
	e.Refresh()
	run := v.ingest(t, `{"category":"test","type":"ping"}`)
	runs := v.waitRuns(t, "quiet", 1)
	if len(runs) != 1 || runs[0].EventID != run.ID || runs[0].State != herald.RunCompleted {
		t.Fatalf("runs = %s, want one for %s", dump(runs), run.ID)
	}
}

// TestReaderFollowsChangesInLog checks that each event is judged by the
// workflow as it was when the event was stored, even when the engine
// reads it after later changes: paused, resumed, filter changed, all
// before the engine starts.
func TestReaderFollowsChangesInLog(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	w := v.create(t, &herald.Workflow{
		Name: "moving", Filter: &herald.Filter{Types: []string{"ping"}},
		Steps: []*herald.WorkflowStep{webhookStep("call", rc.srv.URL)},
	})
	setState := func(state string) {
		if err := v.store.SetWorkflowState(t.Context(), acct, "moving", state); err != nil {
			t.Fatal(err)
		}
	}
	setState(herald.WorkflowPaused)
	v.ingest(t, `{"category":"test","type":"ping","data":{"n":1}}`)
	setState(herald.WorkflowActive)
	ping := v.ingest(t, `{"category":"test","type":"ping","data":{"n":2}}`)
	w.Filter = &herald.Filter{Types: []string{"pong"}}
	if err := v.store.UpdateWorkflow(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	v.ingest(t, `{"category":"test","type":"ping","data":{"n":3}}`)
	pong := v.ingest(t, `{"category":"test","type":"pong","data":{"n":4}}`)

	v.engine(t, nil, "node-1")
	waitFor(t, 10*time.Second, func() (bool, string) {
		w, err := v.store.FindWorkflow(t.Context(), acct, "moving")
		if err != nil {
			return false, err.Error()
		}
		return w.Cursor >= pong.Seq, fmt.Sprintf("cursor %d, want %d", w.Cursor, pong.Seq)
	})
	runs := v.waitRuns(t, "moving", 2)
	if len(runs) != 2 || runs[0].EventID != ping.ID || runs[1].EventID != pong.ID {
		t.Fatalf("runs = %s, want for %s and %s only", dump(runs), ping.ID, pong.ID)
	}
}
