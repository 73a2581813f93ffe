package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// withJsonnet checks templates with the Jsonnet compiler, as the server
// does.
func withJsonnet(cfg *Config) {
	cfg.CompileTemplateAt = func(pointer, text string) error {
		_, err := delivery.CompileAt(pointer, text)
		return err
	}
}

// Secrets a definition may hold, which no answer and no system event may
// show.
const (
	smtpPassword = "smtp-pass-Zq81"
	headerSecret = "Bearer hdr-secret-Wp3"
	dsnPassword  = "dsn-pass-Kx55"
)

// vipWorkflow is a workflow with a step of each kind, and secrets.
var vipWorkflow = `{"name":"vip-login","description":"Greets VIPs",
	"filter":{"categories":["authentication"],"statuses":["succeeded"]},
	"steps":[
		{"kind":"webhook","url":"https://crm.example.com/hook","headers":{"Authorization":"` + headerSecret + `"},"json_template":"{id: event.id}"},
		{"name":"mail","kind":"email","smtp":{"host":"smtp.example.com","username":"herald","password":"` + smtpPassword + `"},
		 "from":"alerts@example.com","to":["risk@example.com"],"subject":"VIP login","input":"{to: [event.data.email]}"},
		{"kind":"setAttributes","attributes":{"vip":true}},
		{"kind":"emitEvent","event":{"category":"crm","type":"vipGreeted"},"retrySchedule":["10s"],"timeout":"5s"},
		{"kind":"endSession"}
	]}`

// noSecrets fails the test if an answer shows a secret.
func noSecrets(t *testing.T, what string, body []byte) {
	t.Helper()
	for _, s := range []string{smtpPassword, headerSecret, dsnPassword, "whsec_"} {
		if strings.Contains(string(body), s) {
			t.Errorf("%s shows a secret (%s): %s", what, s, body)
		}
	}
}

func TestCreateWorkflow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withJsonnet)
	sendLogin(t, e, "L-1", "cust-1", "attempted")
	e.store.mu.Lock()
	lastSeq := e.store.seq["acme"]
	e.store.mu.Unlock()

	r := e.do("POST", "/v1/workflows", e.admin, vipWorkflow).wantStatus(t, 201)
	noSecrets(t, "POST /v1/workflows", r.body)
	if loc := r.header.Get("Location"); loc != "/v1/workflows/vip-login" {
		t.Errorf("Location %q", loc)
	}
	var got herald.Workflow
	r.json(t, &got)
	now := testNow.Truncate(time.Microsecond)
	if got.Name != "vip-login" || got.Description != "Greets VIPs" || got.State != herald.WorkflowActive ||
		got.MaxDepth != herald.DefaultWorkflowMaxDepth || got.Cursor != lastSeq ||
		!got.CreatedAt.Equal(now) || !got.UpdatedAt.Equal(now) ||
		!reflect.DeepEqual(got.Filter, &herald.Filter{Categories: []string{"authentication"}, Statuses: []string{"succeeded"}}) {
		t.Errorf("created %+v", got)
	}
	var names []string
	for _, s := range got.Steps {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, []string{"1-webhook", "mail", "3-setAttributes", "4-emitEvent", "5-endSession"}) {
		t.Errorf("step names %q", names)
	}
	hook, mail, emit := got.Steps[0], got.Steps[1], got.Steps[3]
	if hook.Headers["Authorization"] != herald.Redacted || mail.SMTP.Password != herald.Redacted ||
		mail.SMTP.Port != 587 || mail.SMTP.TLS != herald.SMTPStartTLS || mail.Input != "{to: [event.data.email]}" {
		t.Errorf("steps shown as %+v, %+v", hook, mail)
	}
	if !reflect.DeepEqual(hook.RetrySchedule, herald.DefaultStepRetrySchedule()) || hook.Timeout != herald.Duration(herald.DefaultDeliveryTimeout) ||
		!reflect.DeepEqual(emit.RetrySchedule, []herald.Duration{herald.Duration(10 * time.Second)}) || emit.Timeout != herald.Duration(5*time.Second) {
		t.Errorf("schedules %v %v, %v %v", hook.RetrySchedule, hook.Timeout, emit.RetrySchedule, emit.Timeout)
	}
	// The store holds the secrets as sent.
	stored := e.store.storedWorkflow("acme", "vip-login")
	if stored.Steps[0].Headers["Authorization"] != headerSecret || stored.Steps[1].SMTP.Password != smtpPassword ||
		!strings.HasPrefix(stored.Secret, "whsec_") {
		t.Errorf("stored %+v", stored)
	}

	// A read key reads definitions and lists, secrets masked; it cannot
	// write, nor read the signing secret.
	for _, path := range []string{"/v1/workflows", "/v1/workflows/vip-login"} {
		noSecrets(t, path, e.do("GET", path, e.read, "").wantStatus(t, 200).body)
	}
	var list workflowList
	e.do("GET", "/v1/workflows", e.read, "").wantStatus(t, 200).json(t, &list)
	if len(list.Workflows) != 1 || !reflect.DeepEqual(*list.Workflows[0], got) {
		t.Errorf("listed %+v", list.Workflows)
	}
	e.do("POST", "/v1/workflows", e.read, vipWorkflow).wantStatus(t, 403)
	e.do("GET", "/v1/workflows/vip-login/secret", e.read, "").wantStatus(t, 403)
	var secret secretAnswer
	e.do("GET", "/v1/workflows/vip-login/secret", e.admin, "").wantStatus(t, 200).json(t, &secret)
	if secret.Secret != stored.Secret {
		t.Errorf("secret %q, stored %q", secret.Secret, stored.Secret)
	}

	// Names are unique in an account, not across accounts.
	p := e.do("POST", "/v1/workflows", e.admin, vipWorkflow).wantStatus(t, 409).problem(t)
	if !strings.Contains(p.Detail, "vip-login") {
		t.Errorf("conflict %+v", p)
	}
	e.do("GET", "/v1/workflows/vip-login", e.other, "").wantStatus(t, 404)
	e.do("GET", "/v1/workflows/vip-login/secret", e.other, "").wantStatus(t, 404)
	e.do("POST", "/v1/workflows", e.other, vipWorkflow).wantStatus(t, 201)
	e.do("GET", "/v1/workflows/no%20such", e.read, "").wantStatus(t, 404)

	// The system event names the key and holds no secret.
	r = e.do("GET", "/v1/audit?subjectType=workflow&verb=created", e.read, "").wantStatus(t, 200)
	var page struct{ Events []herald.Event }
	r.json(t, &page)
	if len(page.Events) != 1 || page.Events[0].PrimaryID != "vip-login" || page.Events[0].AgentID != "key_admin" {
		t.Errorf("audit %s", r.body)
	}
	noSecrets(t, "the audit log", r.body)
}

func TestWorkflowInvalid(t *testing.T) {
	t.Parallel()
	step := `{"kind":"webhook","url":"https://example.com/hook"}`
	flow := func(extra string, steps ...string) string {
		if len(steps) == 0 {
			steps = []string{step}
		}
		return `{"name":"w1","steps":[` + strings.Join(steps, ",") + `]` + extra + `}`
	}
	smtp := `"smtp":{"host":"smtp.example.com","username":"u","password":"p"}`
	cases := []struct {
		name string
		body string
		want []string
	}{
		{"not an object", `[]`, []string{""}},
		{"null", `null`, []string{""}},
		{"empty", `{}`, []string{"/name", "/steps"}},
		{"unknown member", flow(`,"trigger":"x","secret":"whsec_x"`), []string{"/secret", "/trigger"}},
		{"set by Herald", flow(`,"state":"paused","cursor":5`), []string{"/cursor", "/state"}},
		{"bad name", `{"name":"no such!","steps":[` + step + `]}`, []string{"/name"}},
		{"name not a string", `{"name":5,"steps":[` + step + `]}`, []string{"/name"}},
		{"unknown filter key", flow(`,"filter":{"category":"x","system_event_typ":"failed"}`), []string{"/filter/category", "/filter/system_event_typ"}},
		{"bad filter value", flow(`,"filter":{"origin":"both"}`), []string{"/filter/origin"}},
		{"steps not an array", `{"name":"w1","steps":5}`, []string{"/steps"}},
		{"too many steps", flow("", slices.Repeat([]string{step}, 21)...), []string{"/steps"}},
		{"null step", flow("", "null"), []string{"/steps/0"}},
		{"unknown step member", flow("", `{"kind":"webhook","url":"https://example.com","urll":"https://example.com"}`), []string{"/steps/0/urll"}},
		{"bad step kind", flow("", `{"kind":"sms"}`), []string{"/steps/0/kind"}},
		{"bad url", flow("", `{"kind":"webhook","url":"ftp://example.com"}`), []string{"/steps/0/url"}},
		{"bad header", flow("", `{"kind":"webhook","url":"https://example.com","headers":{"Host":"x","X-N":5}}`), []string{"/steps/0/headers/Host", "/steps/0/headers/X-N"}},
		{"email without smtp", flow("", `{"kind":"email","from":"a@example.com","to":["b@example.com"]}`), []string{"/steps/0/smtp"}},
		{"bad email address", flow("", `{"kind":"email",`+smtp+`,"from":"alerts","to":["b@example.com","nobody"]}`), []string{"/steps/0/from", "/steps/0/to/1"}},
		{"smtp unknown member", flow("", `{"kind":"email","smtp":{"host":"h","pass":"x"},"from":"a@example.com","to":["b@example.com"]}`), []string{"/steps/0/smtp/pass"}},
		{"smtp password in the clear", flow("", `{"kind":"email","smtp":{"host":"h","username":"u","password":"p","tls":"none"},"from":"a@example.com","to":["b@example.com"]}`), []string{"/steps/0/smtp/tls"}},
		{"redacted password", flow("", `{"kind":"email","smtp":{"host":"h","username":"u","password":"[redacted]"},"from":"a@example.com","to":["b@example.com"]}`), []string{"/steps/0/smtp/password"}},
		{"template does not compile", flow("", `{"kind":"slack","url":"https://hooks.slack.com/x","json_template":"{text:"}`), []string{"/steps/0/json_template"}},
		{"input does not compile", flow("", step, `{"kind":"webhook","input":"{url: "}`), []string{"/steps/1/input"}},
		{"emit without event", flow("", `{"kind":"emitEvent"}`), []string{"/steps/0/event"}},
		{"emit event not an object", flow("", `{"kind":"emitEvent","event":[1]}`), []string{"/steps/0/event"}},
		{"attributes not an object", flow("", `{"kind":"setAttributes","attributes":[1]}`), []string{"/steps/0/attributes"}},
		{"same step name", flow("", `{"name":"a","kind":"endSession"}`, `{"name":"a","kind":"endSession"}`), []string{"/steps/1/name"}},
		{"durations", flow("", `{"kind":"endSession","timeout":"soon","retrySchedule":["1s","1ms",5]}`), []string{"/steps/0/retrySchedule/1", "/steps/0/retrySchedule/2", "/steps/0/timeout"}},
		{"max depth", flow(`,"maxDepth":50`), []string{"/maxDepth"}},
		{"max depth not an integer", flow(`,"maxDepth":"5"`), []string{"/maxDepth"}},
		{"trailing data", flow("") + ` {}`, []string{""}},
	}
	e := newEnv(t, withJsonnet)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", "/v1/workflows", e.admin, c.body).wantStatus(t, 400).problem(t)
			if got := sorted(pointers(p)); !slices.Equal(got, sorted(c.want)) {
				t.Errorf("errors %+v, want pointers %q", p.Errors, c.want)
			}
			if p.Type != problemTypeBase+"invalid" {
				t.Errorf("type %q", p.Type)
			}
		})
	}
	if n := len(e.store.flows.byRef); n != 0 {
		t.Errorf("%d workflows stored by invalid requests", n)
	}
}

func TestReplaceWorkflow(t *testing.T) {
	t.Parallel()
	var changed atomic.Int32
	e := newEnv(t, withJsonnet, func(cfg *Config) { cfg.WorkflowsChanged = func() { changed.Add(1) } })
	e.do("POST", "/v1/workflows", e.admin, vipWorkflow).wantStatus(t, 201)
	e.do("POST", "/v1/workflows/vip-login/pause", e.admin, "").wantStatus(t, 200)
	e.advance(time.Hour)

	// What GET answers can be changed and sent back as it is: the
	// secrets it masks are kept.
	var def map[string]any
	e.do("GET", "/v1/workflows/vip-login", e.admin, "").wantStatus(t, 200).json(t, &def)
	def["description"] = "Greets VIPs, politely"
	def["cursor"] = 999 // ignored
	b, _ := json.Marshal(def)
	r := e.do("PUT", "/v1/workflows/vip-login", e.admin, string(b)).wantStatus(t, 200)
	noSecrets(t, "PUT /v1/workflows/vip-login", r.body)
	var got herald.Workflow
	r.json(t, &got)
	if got.Description != "Greets VIPs, politely" || got.State != herald.WorkflowPaused || got.Cursor != 0 ||
		!got.CreatedAt.Equal(testNow.Truncate(time.Microsecond)) || !got.UpdatedAt.Equal(testNow.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("replaced %+v", got)
	}
	stored := e.store.storedWorkflow("acme", "vip-login")
	if stored.Steps[0].Headers["Authorization"] != headerSecret || stored.Steps[1].SMTP.Password != smtpPassword {
		t.Errorf("secrets not kept: %+v %+v", stored.Steps[0].Headers, stored.Steps[1].SMTP)
	}
	if n := changed.Load(); n != 3 {
		t.Errorf("WorkflowsChanged called %d times, want 3 (create, pause, replace)", n)
	}

	// A new SMTP host with the masked password: nothing to put back.
	steps := def["steps"].([]any)
	steps[1].(map[string]any)["smtp"].(map[string]any)["host"] = "smtp.other.example.com"
	b, _ = json.Marshal(def)
	p := e.do("PUT", "/v1/workflows/vip-login", e.admin, string(b)).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/steps/1/smtp/password"}) {
		t.Errorf("masked password for another host: %+v", p.Errors)
	}

	// A member left out takes its default.
	got = herald.Workflow{}
	e.do("PUT", "/v1/workflows/vip-login", e.admin, `{"steps":[{"kind":"endSession"}]}`).wantStatus(t, 200).json(t, &got)
	if got.Description != "" || got.Filter != nil || len(got.Steps) != 1 || got.MaxDepth != herald.DefaultWorkflowMaxDepth {
		t.Errorf("replaced with a step alone: %+v", got)
	}

	p = e.do("PUT", "/v1/workflows/vip-login", e.admin, `{"name":"other","steps":[{"kind":"endSession"}]}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/name"}) {
		t.Errorf("another name: %+v", p.Errors)
	}
	p = e.do("PUT", "/v1/workflows/vip-login", e.admin, `{"steps":[{"kind":"endSession","secret":"x"}]}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/steps/0/secret"}) {
		t.Errorf("a secret: %+v", p.Errors)
	}
	e.do("PUT", "/v1/workflows/vip-login", e.read, `{"steps":[{"kind":"endSession"}]}`).wantStatus(t, 403)
	e.do("PUT", "/v1/workflows/vip-login", e.other, `{"steps":[{"kind":"endSession"}]}`).wantStatus(t, 404)
	e.do("PUT", "/v1/workflows/nope", e.admin, `{"steps":[{"kind":"endSession"}]}`).wantStatus(t, 404)
}

func TestWorkflowPauseResumeDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/workflows", e.admin, vipWorkflow).wantStatus(t, 201)
	base := "/v1/workflows/vip-login"
	audits := func() int {
		var page struct{ Events []herald.Event }
		e.do("GET", "/v1/audit?subjectType=workflow&limit=1000", e.read, "").wantStatus(t, 200).json(t, &page)
		return len(page.Events)
	}
	var got herald.Workflow
	e.do("POST", base+"/pause", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.WorkflowPaused {
		t.Errorf("paused %+v", got)
	}
	before := audits()
	e.do("POST", base+"/pause", e.admin, "{}").wantStatus(t, 200)
	if audits() != before {
		t.Error("pausing a paused workflow wrote a system event")
	}
	e.do("POST", base+"/resume", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.WorkflowActive {
		t.Errorf("resumed %+v", got)
	}
	p := e.do("POST", base+"/pause", e.admin, `{"reason":"x"}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/reason"}) {
		t.Errorf("pause with a body: %+v", p.Errors)
	}
	e.do("POST", base+"/pause", e.read, "").wantStatus(t, 403)
	e.do("POST", base+"/resume", e.other, "").wantStatus(t, 404)

	e.store.addRun("acme", herald.WorkflowRun{ID: "run-1", Workflow: "vip-login", EventID: "evt-1", Seq: 1, Trigger: herald.TriggerFilter,
		Depth: 1, State: herald.RunCompleted, CreatedAt: testNow, UpdatedAt: testNow})
	e.do("DELETE", base, e.read, "").wantStatus(t, 403)
	e.do("DELETE", base, e.other, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 204)
	e.do("GET", base, e.admin, "").wantStatus(t, 404)
	e.do("GET", base+"/runs", e.read, "").wantStatus(t, 404)
	e.do("GET", base+"/runs/run-1", e.read, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 404)
}

func TestWorkflowRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("POST", "/v1/workflows", e.admin, vipWorkflow).wantStatus(t, 201)
	e.do("POST", "/v1/workflows", e.admin, `{"name":"other","steps":[{"kind":"endSession"}]}`).wantStatus(t, 201)
	states := []string{herald.RunCompleted, herald.RunFailed, herald.RunCompleted, herald.RunPending, herald.RunRunning}
	for i, state := range states {
		at := testNow.Add(time.Duration(i) * time.Minute)
		e.store.addRun("acme", herald.WorkflowRun{ID: fmt.Sprintf("run-%d", i+1), Workflow: "vip-login", EventID: fmt.Sprintf("evt-%d", i+1),
			Seq: int64(i + 1), Trigger: herald.TriggerFilter, Depth: 1, State: state, CreatedAt: at, UpdatedAt: at,
			Steps: []*herald.StepRun{{Name: "1-webhook", Kind: "webhook", State: herald.StepSucceeded, Attempts: 1, Output: json.RawMessage(`{"status":200}`)}}})
	}
	e.store.addRun("acme", herald.WorkflowRun{ID: "run-other", Workflow: "other", EventID: "evt-1", Seq: 1, Trigger: herald.TriggerStatus,
		Depth: 2, State: herald.RunCompleted, CreatedAt: testNow, UpdatedAt: testNow})

	ids := func(path string) ([]string, runPage) {
		t.Helper()
		var page runPage
		e.do("GET", path, e.read, "").wantStatus(t, 200).json(t, &page)
		var out []string
		for _, r := range page.Runs {
			out = append(out, r.ID)
		}
		return out, page
	}
	got, page := ids("/v1/workflows/vip-login/runs?limit=2")
	if !slices.Equal(got, []string{"run-5", "run-4"}) || !page.HasMore || page.Next != "run-4" {
		t.Errorf("first page %q %+v", got, page)
	}
	got, page = ids("/v1/workflows/vip-login/runs?limit=2&before=" + page.Next)
	if !slices.Equal(got, []string{"run-3", "run-2"}) || page.Next != "run-2" {
		t.Errorf("second page %q %+v", got, page)
	}
	got, page = ids("/v1/workflows/vip-login/runs?limit=2&before=" + page.Next)
	if !slices.Equal(got, []string{"run-1"}) || page.HasMore || page.Next != "" {
		t.Errorf("last page %q %+v", got, page)
	}
	if got, _ = ids("/v1/workflows/vip-login/runs?state=completed"); !slices.Equal(got, []string{"run-3", "run-1"}) {
		t.Errorf("completed runs %q", got)
	}
	if got, _ = ids("/v1/workflows/vip-login/runs"); len(got) != 5 {
		t.Errorf("all runs %q", got)
	}
	r := e.do("GET", "/v1/workflows/other/runs", e.read, "").wantStatus(t, 200)
	if !strings.Contains(string(r.body), `"runs":[{`) || strings.Contains(string(r.body), "run-1") {
		t.Errorf("runs of other: %s", r.body)
	}

	var run herald.WorkflowRun
	e.do("GET", "/v1/workflows/vip-login/runs/run-2", e.read, "").wantStatus(t, 200).json(t, &run)
	if run.ID != "run-2" || run.State != herald.RunFailed || len(run.Steps) != 1 || string(run.Steps[0].Output) != `{"status":200}` {
		t.Errorf("run %+v", run)
	}
	e.do("GET", "/v1/workflows/vip-login/runs/run-other", e.read, "").wantStatus(t, 404)
	e.do("GET", "/v1/workflows/vip-login/runs/run-9", e.read, "").wantStatus(t, 404)
	e.do("GET", "/v1/workflows/vip-login/runs/run-2", e.other, "").wantStatus(t, 404)
	e.do("GET", "/v1/workflows/vip-login/runs", e.ingest, "").wantStatus(t, 403)

	for query, want := range map[string][]string{
		"state=done":          {"?state"},
		"limit=0":             {"?limit"},
		"limit=501":           {"?limit"},
		"before=":             {"?before"},
		"after=run-1":         {"?after"},
		"state=x&limit=x":     {"?limit", "?state"},
		"state=failed&state=": {"?state"},
	} {
		p := e.do("GET", "/v1/workflows/vip-login/runs?"+query, e.read, "").wantStatus(t, 400).problem(t)
		if got := sorted(pointers(p)); !slices.Equal(got, want) {
			t.Errorf("%s: %+v", query, p.Errors)
		}
	}
}
