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
)

// Jobs with secrets: a batch export to a PostgreSQL table, a stream to a
// webhook, and an alert by email.
var (
	pgExport = `{"name":"nightly","filter":{"categories":["transfers"]},
		"export":{"mode":"batch","every":"1h","destination":{"type":"postgres","dsn":"postgres://herald:` + dsnPassword + `@db.example.com:5432/warehouse","table":"audit.events"}}}`
	hookExport = `{"filter":{"origin":"system"},
		"export":{"mode":"stream","destination":{"type":"webhook","url":"https://siem.example.com/in","headers":{"Authorization":"` + headerSecret + `"},"json_template":"{id: event.id}"}}}`
	mailAlert = `{"name":"failed logins","filter":{"types":["login"],"statuses":["failed"]},
		"alert":{"threshold":5,"window":"10m","cooldown":"1h","target":{"kind":"email",
			"smtp":{"host":"smtp.example.com","username":"herald","password":"` + smtpPassword + `"},
			"from":"alerts@example.com","to":["risk@example.com"],"json_template":"{subject: 'Logins failing'}"}}}`
)

// newJob is a job as the API shows it.
type newJob struct {
	herald.Work
	NextRunAt *time.Time `json:"nextRunAt"`
}

func TestCreateExport(t *testing.T) {
	t.Parallel()
	var changed atomic.Int32
	e := newEnv(t, withJsonnet, func(cfg *Config) { cfg.WorkChanged = func() { changed.Add(1) } })
	r := e.do("POST", "/v1/exports", e.admin, pgExport).wantStatus(t, 201)
	noSecrets(t, "POST /v1/exports", r.body)
	var got newJob
	r.json(t, &got)
	now := testNow.Truncate(time.Microsecond)
	if loc := r.header.Get("Location"); loc != "/v1/work/"+got.ID || !strings.HasPrefix(got.ID, "work_") {
		t.Errorf("Location %q for id %q", loc, got.ID)
	}
	x := got.Export
	if got.Kind != herald.WorkExport || got.Name != "nightly" || got.State != herald.WorkActive || x == nil ||
		x.Mode != herald.ExportBatch || x.Every != herald.Duration(time.Hour) || x.Start != herald.StartBeginning || x.BatchSize != 1000 ||
		x.Destination.DSN != "postgres://herald:xxxxx@db.example.com:5432/warehouse" || x.Destination.Table != "audit.events" ||
		!reflect.DeepEqual(x.RetrySchedule, herald.DefaultStepRetrySchedule()) ||
		!reflect.DeepEqual(got.Filter, herald.Filter{Categories: []string{"transfers"}}) ||
		!got.CreatedAt.Equal(now) || got.NextRunAt == nil || !got.NextRunAt.Equal(now) {
		t.Errorf("created %+v, export %+v", got, x)
	}
	if stored := e.store.storedWork("acme", got.ID); !strings.Contains(stored.Export.Destination.DSN, dsnPassword) {
		t.Errorf("stored DSN %q", stored.Export.Destination.DSN)
	}
	if n := changed.Load(); n != 1 {
		t.Errorf("WorkChanged called %d times", n)
	}

	var alert newJob
	e.do("POST", "/v1/alerts", e.admin, mailAlert).wantStatus(t, 201).json(t, &alert)
	if alert.Kind != herald.WorkAlert || alert.Alert == nil || alert.Alert.Threshold != 5 || alert.Alert.Target.SMTP.Password != herald.Redacted ||
		alert.Alert.Target.SMTP.Port != 587 || alert.NextRunAt != nil {
		t.Errorf("alert %+v", alert)
	}

	// Each list has its kind; a read key reads them, secrets masked.
	list := func(path string) []string {
		t.Helper()
		r := e.do("GET", path, e.read, "").wantStatus(t, 200)
		noSecrets(t, path, r.body)
		var l struct{ Work []newJob }
		r.json(t, &l)
		var ids []string
		for _, w := range l.Work {
			ids = append(ids, w.ID)
		}
		return ids
	}
	for path, want := range map[string][]string{
		"/v1/exports":          {got.ID},
		"/v1/alerts":           {alert.ID},
		"/v1/work":             {got.ID, alert.ID},
		"/v1/work?kind=export": {got.ID},
		"/v1/work?kind=alert":  {alert.ID},
	} {
		if ids := list(path); !slices.Equal(ids, want) {
			t.Errorf("%s lists %q, want %q", path, ids, want)
		}
	}
	p := e.do("GET", "/v1/work?kind=import", e.read, "").wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"?kind"}) {
		t.Errorf("kind=import: %+v", p.Errors)
	}
	noSecrets(t, "GET /v1/work/{id}", e.do("GET", "/v1/work/"+got.ID, e.read, "").wantStatus(t, 200).body)
	e.do("GET", "/v1/work/"+got.ID, e.other, "").wantStatus(t, 404)
	e.do("GET", "/v1/exports", e.other, "").wantStatus(t, 200)
	e.do("POST", "/v1/exports", e.read, pgExport).wantStatus(t, 403)

	// The signing secret, for admins only.
	e.do("GET", "/v1/work/"+got.ID+"/secret", e.read, "").wantStatus(t, 403)
	e.do("GET", "/v1/work/"+got.ID+"/secret", e.other, "").wantStatus(t, 404)
	var secret secretAnswer
	e.do("GET", "/v1/work/"+got.ID+"/secret", e.admin, "").wantStatus(t, 200).json(t, &secret)
	if stored := e.store.storedWork("acme", got.ID); !strings.HasPrefix(secret.Secret, "whsec_") || secret.Secret != stored.Secret {
		t.Errorf("secret %q, stored %q", secret.Secret, stored.Secret)
	}

	// The kind may be given, if it is the route's.
	e.do("POST", "/v1/exports", e.admin, `{"kind":"export",`+pgExport[1:]).wantStatus(t, 201)
	p = e.do("POST", "/v1/exports", e.admin, `{"kind":"alert",`+pgExport[1:]).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/kind"}) {
		t.Errorf("kind alert on /v1/exports: %+v", p.Errors)
	}
}

func TestWorkInvalid(t *testing.T) {
	t.Parallel()
	export := func(x string) string { return `{"export":` + x + `}` }
	dest := func(d string) string { return export(`{"mode":"stream","destination":` + d + `}`) }
	pg := func(dsn, table string) string {
		return dest(`{"type":"postgres","dsn":"` + dsn + `","table":"` + table + `"}`)
	}
	alert := func(a string) string { return `{"alert":` + a + `}` }
	target := func(t string) string { return alert(`{"target":` + t + `}`) }
	smtp := `"smtp":{"host":"smtp.example.com","username":"u","password":"p"}`
	lytics := func(config string) string { return `{"config":` + config + `,"workflow":"webhook_system_events"}` }
	checked := &herald.Error{Code: herald.EINVALID, Message: "bad dsn",
		Fields: []herald.FieldError{{Pointer: "/export/destination/dsn", Detail: "cannot parse: sslmode is invalid"}}}
	cases := []struct {
		name string
		path string
		body string
		want []string
	}{
		{"not an object", "/v1/exports", `[]`, []string{""}},
		{"no export", "/v1/exports", `{}`, []string{"/export"}},
		{"unknown member", "/v1/exports", `{"export":null,"schedule":"x"}`, []string{"/export", "/schedule"}},
		{"set by Herald", "/v1/exports", `{"id":"work_x","state":"paused","runtime":{},"export":null}`, []string{"/export", "/id", "/runtime", "/state"}},
		{"unknown filter key", "/v1/exports", `{"filter":{"category":"x"},` + dest(`{"type":"files","dir":"out","format":"csv"}`)[1:], []string{"/filter/category"}},
		{"bad cron", "/v1/exports", export(`{"mode":"batch","cron":"every day","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/cron"}},
		{"cron and every", "/v1/exports", export(`{"mode":"batch","cron":"@daily","every":"1h","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/cron"}},
		{"no schedule", "/v1/exports", export(`{"mode":"batch","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/every"}},
		{"bad every", "/v1/exports", export(`{"mode":"batch","every":"500ms","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/every"}},
		{"every not a duration", "/v1/exports", export(`{"mode":"batch","every":"hourly","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/every"}},
		{"bad mode", "/v1/exports", export(`{"mode":"daily","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/mode"}},
		{"bad time", "/v1/exports", export(`{"mode":"once","from":"yesterday","destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/from"}},
		{"bad batch size", "/v1/exports", export(`{"mode":"stream","batchSize":-1,"destination":{"type":"files","dir":"out","format":"csv"}}`), []string{"/export/batchSize"}},
		{"unknown destination member", "/v1/exports", dest(`{"type":"files","dir":"out","format":"csv","path":"x"}`), []string{"/export/destination/path"}},
		{"bad destination type", "/v1/exports", dest(`{"type":"s3"}`), []string{"/export/destination/type"}},
		{"bad destination url", "/v1/exports", dest(`{"type":"webhook","url":"ftp://example.com/in"}`), []string{"/export/destination/url"}},
		{"bad destination header", "/v1/exports", dest(`{"type":"webhook","url":"https://example.com","headers":{"webhook-id":"x"}}`), []string{"/export/destination/headers/webhook-id"}},
		{"bad dsn", "/v1/exports", pg("mysql://db.example.com/x", "events"), []string{"/export/destination/dsn"}},
		{"dsn the driver refuses", "/v1/exports", pg("postgres://db.example.com/x?sslmode=bogus", "events"), []string{"/export/destination/dsn"}},
		{"bad table", "/v1/exports", pg("postgres://db.example.com/x", "events; drop table x"), []string{"/export/destination/table"}},
		{"dir with ..", "/v1/exports", dest(`{"type":"files","dir":"../etc","format":"csv"}`), []string{"/export/destination/dir"}},
		{"absolute dir", "/v1/exports", dest(`{"type":"files","dir":"/etc","format":"ndjson"}`), []string{"/export/destination/dir"}},
		{"bad format", "/v1/exports", dest(`{"type":"files","dir":"out","format":"xml"}`), []string{"/export/destination/format"}},
		{"template does not compile", "/v1/exports", dest(`{"type":"webhook","url":"https://example.com","json_template":"{text:"}`), []string{"/export/destination/json_template"}},
		{"webhook members on files", "/v1/exports", dest(`{"type":"files","dir":"out","format":"csv","url":"https://example.com"}`), []string{"/export/destination/url"}},
		{"alert on exports", "/v1/exports", target(`{"kind":"slack","url":"https://hooks.slack.com/x"}`), []string{"/alert", "/export"}},
		{"kind of another", "/v1/alerts", `{"kind":"export",` + target(`{"kind":"slack","url":"https://hooks.slack.com/x"}`)[1:], []string{"/kind"}},

		{"no alert", "/v1/alerts", `{"name":"x"}`, []string{"/alert"}},
		{"bad threshold", "/v1/alerts", alert(`{"threshold":-1,"target":{"kind":"slack","url":"https://hooks.slack.com/x"}}`), []string{"/alert/threshold"}},
		{"threshold without window", "/v1/alerts", alert(`{"threshold":5,"target":{"kind":"slack","url":"https://hooks.slack.com/x"}}`), []string{"/alert/window"}},
		{"bad target kind", "/v1/alerts", target(`{"kind":"pager"}`), []string{"/alert/target/kind"}},
		{"email without smtp", "/v1/alerts", target(`{"kind":"email","from":"a@example.com","to":["b@example.com"]}`), []string{"/alert/target/smtp"}},
		{"bad email address", "/v1/alerts", target(`{"kind":"email",` + smtp + `,"from":"a@example.com","to":["risk at example.com"]}`), []string{"/alert/target/to/0"}},
		{"no recipient", "/v1/alerts", target(`{"kind":"email",` + smtp + `,"from":"a@example.com"}`), []string{"/alert/target/to"}},
		{"redacted secrets", "/v1/alerts", target(`{"kind":"webhook","url":"https://example.com","headers":{"X-Key":"[redacted]"}}`), []string{"/alert/target/headers/X-Key"}},
		{"slack with headers", "/v1/alerts", target(`{"kind":"slack","url":"https://hooks.slack.com/x","headers":{"X-Key":"k"}}`), []string{"/alert/target/headers"}},
		{"alert template does not compile", "/v1/alerts", target(`{"kind":"slack","url":"https://hooks.slack.com/x","json_template":"{text:"}`), []string{"/alert/target/json_template"}},

		{"lytics unknown config key", "/v1/exports", lytics(`{"webhook_url":"https://example.com","categories":["x"]}`), []string{"/config/categories"}},
		{"lytics wrong workflow", "/v1/alerts", `{"config":{"webhook_url":"https://example.com"},"workflow":"email"}`, []string{"/workflow"}},
		{"lytics bad url", "/v1/exports", lytics(`{"webhook_url":"YOUR_WEBHOOK_ENDPOINT"}`), []string{"/config/webhook_url"}},
		{"lytics bad verb", "/v1/alerts", lytics(`{"webhook_url":"https://example.com","system_event_type":"no way"}`), []string{"/config/system_event_type"}},
		{"lytics bad template", "/v1/alerts", lytics(`{"webhook_url":"https://example.com","json_template":"{text:"}`), []string{"/config/json_template"}},
		{"lytics export bad header", "/v1/exports", lytics(`{"webhook_url":"https://example.com","headers":{"Host":"x"}}`), []string{"/config/headers/Host"}},
		{"lytics slack with headers", "/v1/alerts", lytics(`{"webhook_url":"https://hooks.slack.com/services/T/B/X","headers":{"X-Key":"k"}}`), []string{"/config/headers"}},
	}
	e := newEnv(t, withJsonnet, func(cfg *Config) {
		cfg.CheckDestination = func(d *herald.Destination) error {
			if strings.Contains(d.DSN, "sslmode=bogus") {
				return checked
			}
			return nil
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", c.path, e.admin, c.body).wantStatus(t, 400).problem(t)
			if got := sorted(pointers(p)); !slices.Equal(got, sorted(c.want)) {
				t.Errorf("errors %+v, want pointers %q", p.Errors, c.want)
			}
		})
	}
	if n := len(e.store.jobs.byRef); n != 0 {
		t.Errorf("%d jobs stored by invalid requests", n)
	}
}

// TestLyticsWork posts the Lytics documentation's webhook job configs to
// /v1/exports and /v1/alerts.
func TestLyticsWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withJsonnet)
	basic := strings.Replace(lyticsExample(t, "basic"), "YOUR_WEBHOOK_ENDPOINT", "https://example.com/hooks/lytics", 1)
	slack := strings.Replace(lyticsExample(t, "slack"), "YOUR_SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/XXXX", 1)
	slackTemplate := `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

	var x newJob
	e.do("POST", "/v1/exports", e.admin, slack).wantStatus(t, 201).json(t, &x)
	stored := e.store.storedWork("acme", x.ID)
	want := &herald.ExportConfig{Mode: herald.ExportStream, Start: herald.StartNow, BatchSize: 1,
		Destination:   herald.Destination{Type: herald.DestinationWebhook, URL: "https://hooks.slack.com/services/T000/B000/XXXX", JSONTemplate: slackTemplate},
		RetrySchedule: herald.DefaultStepRetrySchedule()}
	if stored.Kind != herald.WorkExport || !reflect.DeepEqual(stored.Export, want) || stored.Alert != nil ||
		!reflect.DeepEqual(stored.Filter, herald.Filter{SystemEventType: "failed", Origin: herald.OriginSystem}) {
		t.Errorf("export made of the Slack job: %+v %+v", stored, stored.Export)
	}

	var a newJob
	e.do("POST", "/v1/alerts", e.admin, slack).wantStatus(t, 201).json(t, &a)
	stored = e.store.storedWork("acme", a.ID)
	if stored.Kind != herald.WorkAlert || stored.Export != nil || stored.Alert.Threshold != 1 ||
		!reflect.DeepEqual(stored.Alert.Target, herald.Target{Kind: herald.TargetSlack, URL: "https://hooks.slack.com/services/T000/B000/XXXX", JSONTemplate: slackTemplate}) ||
		!reflect.DeepEqual(stored.Filter, herald.Filter{SystemEventType: "failed", Origin: herald.OriginSystem}) {
		t.Errorf("alert made of the Slack job: %+v %+v", stored, stored.Alert)
	}

	e.do("POST", "/v1/alerts", e.admin, basic).wantStatus(t, 201).json(t, &a)
	stored = e.store.storedWork("acme", a.ID)
	if !reflect.DeepEqual(stored.Alert.Target, herald.Target{Kind: herald.TargetWebhook, URL: "https://example.com/hooks/lytics", Headers: map[string]string{"custom-header": "header-value"}}) ||
		!reflect.DeepEqual(stored.Filter, herald.Filter{SystemEventMultipleTypes: []string{"updated", "created", "failed"}, Origin: herald.OriginSystem}) {
		t.Errorf("alert made of the basic job: %+v %+v", stored, stored.Alert)
	}
	e.do("POST", "/v1/exports", e.admin, basic).wantStatus(t, 201).json(t, &x)
	if d := e.store.storedWork("acme", x.ID).Export.Destination; d.URL != "https://example.com/hooks/lytics" || d.Headers["custom-header"] != "header-value" {
		t.Errorf("export made of the basic job: %+v", d)
	}

	// A job read back replaces in the Lytics shape too.
	e.do("PUT", "/v1/work/"+x.ID, e.admin, slack).wantStatus(t, 200)
	if d := e.store.storedWork("acme", x.ID).Export.Destination; d.URL != "https://hooks.slack.com/services/T000/B000/XXXX" || d.JSONTemplate != slackTemplate {
		t.Errorf("export replaced by the Slack job: %+v", d)
	}
}

func TestReplaceWork(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withJsonnet)
	var x, hook, a newJob
	e.do("POST", "/v1/exports", e.admin, pgExport).wantStatus(t, 201).json(t, &x)
	e.do("POST", "/v1/exports", e.admin, hookExport).wantStatus(t, 201).json(t, &hook)
	e.do("POST", "/v1/alerts", e.admin, mailAlert).wantStatus(t, 201).json(t, &a)
	e.do("POST", "/v1/work/"+a.ID+"/pause", e.admin, `{"reason":"holidays"}`).wantStatus(t, 200)
	e.store.setWork("acme", x.ID, func(w *herald.Work) { w.Runtime.Cursor, w.Runtime.Cycles = 42, 3 })
	e.advance(time.Hour)

	// What GET answers can be changed and sent back as it is: the secrets
	// it masks are kept, and so are state and runtime.
	roundTrip := func(id string, change func(m map[string]any)) newJob {
		t.Helper()
		var def map[string]any
		e.do("GET", "/v1/work/"+id, e.admin, "").wantStatus(t, 200).json(t, &def)
		change(def)
		b, _ := json.Marshal(def)
		r := e.do("PUT", "/v1/work/"+id, e.admin, string(b)).wantStatus(t, 200)
		noSecrets(t, "PUT /v1/work/"+id, r.body)
		var got newJob
		r.json(t, &got)
		return got
	}
	got := roundTrip(x.ID, func(m map[string]any) { m["name"] = "hourly" })
	stored := e.store.storedWork("acme", x.ID)
	if got.Name != "hourly" || got.Runtime.Cursor != 42 || got.Runtime.Cycles != 3 || stored.Name != "hourly" ||
		!strings.Contains(stored.Export.Destination.DSN, dsnPassword) || !got.UpdatedAt.Equal(testNow.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("replaced %+v; stored DSN %q", got, stored.Export.Destination.DSN)
	}
	roundTrip(hook.ID, func(m map[string]any) { m["name"] = "siem" })
	if h := e.store.storedWork("acme", hook.ID).Export.Destination.Headers; h["Authorization"] != headerSecret {
		t.Errorf("stored headers %q", h)
	}
	got = roundTrip(a.ID, func(m map[string]any) { m["alert"].(map[string]any)["threshold"] = 10 })
	stored = e.store.storedWork("acme", a.ID)
	if got.State != herald.WorkPaused || got.StateReason != "holidays" || stored.Alert.Threshold != 10 || stored.Alert.Target.SMTP.Password != smtpPassword {
		t.Errorf("replaced %+v; stored %+v", got, stored.Alert)
	}

	// A new DSN is taken as sent; a new SMTP user with the masked
	// password stands for nothing.
	got = roundTrip(x.ID, func(m map[string]any) {
		m["export"].(map[string]any)["destination"].(map[string]any)["dsn"] = "postgres://other@db2.example.com/w"
	})
	if d := e.store.storedWork("acme", x.ID).Export.Destination.DSN; d != "postgres://other@db2.example.com/w" {
		t.Errorf("new DSN stored as %q", d)
	}
	var def map[string]any
	e.do("GET", "/v1/work/"+a.ID, e.admin, "").wantStatus(t, 200).json(t, &def)
	def["alert"].(map[string]any)["target"].(map[string]any)["smtp"].(map[string]any)["username"] = "someone"
	b, _ := json.Marshal(def)
	p := e.do("PUT", "/v1/work/"+a.ID, e.admin, string(b)).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/alert/target/smtp/password"}) {
		t.Errorf("masked password for another user: %+v", p.Errors)
	}

	for body, want := range map[string]string{
		`{"id":"work_other",` + pgExport[1:]:  "/id",
		`{"kind":"alert",` + pgExport[1:]:     "/kind",
		`{"secret":"whsec_x",` + pgExport[1:]: "/secret",
		`{"name":"x"}`:                        "/export",
	} {
		p := e.do("PUT", "/v1/work/"+x.ID, e.admin, body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{want}) {
			t.Errorf("PUT %s: %+v", body, p.Errors)
		}
	}
	e.do("PUT", "/v1/work/"+x.ID, e.read, pgExport).wantStatus(t, 403)
	e.do("PUT", "/v1/work/"+x.ID, e.other, pgExport).wantStatus(t, 404)
	e.do("PUT", "/v1/work/work_nope", e.admin, pgExport).wantStatus(t, 404)
}

func TestWorkStateRunDelete(t *testing.T) {
	t.Parallel()
	var changed atomic.Int32
	e := newEnv(t, func(cfg *Config) { cfg.WorkChanged = func() { changed.Add(1) } })
	var x, stream newJob
	e.do("POST", "/v1/exports", e.admin, pgExport).wantStatus(t, 201).json(t, &x)
	e.do("POST", "/v1/exports", e.admin, hookExport).wantStatus(t, 201).json(t, &stream)
	base := "/v1/work/" + x.ID

	var got newJob
	e.do("POST", base+"/pause", e.admin, `{"reason":"maintenance"}`).wantStatus(t, 200).json(t, &got)
	if got.State != herald.WorkPaused || got.StateReason != "maintenance" || got.NextRunAt != nil {
		t.Errorf("paused %+v", got)
	}
	p := e.do("POST", base+"/run", e.admin, "").wantStatus(t, 409).problem(t)
	if !strings.Contains(p.Detail, "resume") {
		t.Errorf("run while paused: %+v", p)
	}
	got = newJob{}
	e.do("POST", base+"/resume", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.WorkActive || got.StateReason != "" {
		t.Errorf("resumed %+v", got)
	}

	// A failed job resumes too.
	e.store.setWork("acme", x.ID, func(w *herald.Work) { w.State, w.StateReason = herald.WorkFailed, "unit failed" })
	got = newJob{}
	e.do("POST", base+"/resume", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.WorkActive {
		t.Errorf("resumed from failed: %+v", got)
	}

	// Run now: the cycle is due now, whatever the schedule says.
	e.store.setWork("acme", x.ID, func(w *herald.Work) {
		next := testNow.Add(time.Hour)
		w.Runtime.NextRunAt = &next
	})
	e.advance(time.Minute)
	r := e.do("POST", base+"/run", e.admin, "").wantStatus(t, 202)
	got = newJob{}
	r.json(t, &got)
	at := testNow.Add(time.Minute).Truncate(time.Microsecond)
	if got.RunNowAt == nil || !got.RunNowAt.Equal(at) || got.NextRunAt == nil || !got.NextRunAt.Equal(at) {
		t.Errorf("run now: %s", r.body)
	}
	p = e.do("POST", "/v1/work/"+stream.ID+"/run", e.admin, "").wantStatus(t, 409).problem(t)
	if !strings.Contains(p.Detail, "batch") {
		t.Errorf("run a stream: %+v", p)
	}
	p = e.do("POST", base+"/run", e.admin, `{"now":true}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/now"}) {
		t.Errorf("run with a body: %+v", p.Errors)
	}

	// A one-time export that finished neither pauses nor resumes.
	e.store.setWork("acme", x.ID, func(w *herald.Work) { w.State = herald.WorkCompleted })
	for _, verb := range []string{"pause", "resume"} {
		e.do("POST", base+"/"+verb, e.admin, "").wantStatus(t, 409)
	}
	if n := changed.Load(); n != 6 {
		t.Errorf("WorkChanged called %d times, want 6 (2 creates, pause, 2 resumes, run)", n)
	}

	for _, key := range []string{e.read, e.ingest} {
		for _, verb := range []string{"pause", "resume", "run"} {
			e.do("POST", base+"/"+verb, key, "").wantStatus(t, 403)
		}
	}
	e.do("POST", base+"/pause", e.other, "").wantStatus(t, 404)
	e.store.addRecord("acme", herald.WorkRecord{WorkID: x.ID, Kind: herald.RecordCycle, Number: 1, State: herald.RecordSucceeded})
	e.do("DELETE", base, e.read, "").wantStatus(t, 403)
	e.do("DELETE", base, e.other, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 204)
	e.do("GET", base, e.read, "").wantStatus(t, 404)
	e.do("GET", base+"/history", e.read, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 404)
}

func TestWorkHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var x newJob
	e.do("POST", "/v1/exports", e.admin, pgExport).wantStatus(t, 201).json(t, &x)
	for i := 1; i <= 5; i++ {
		at := testNow.Add(time.Duration(i) * time.Hour)
		e.store.addRecord("acme", herald.WorkRecord{WorkID: x.ID, Kind: herald.RecordCycle, Number: int64(i), State: herald.RecordSucceeded,
			StartedAt: at, FinishedAt: at.Add(time.Second), Events: 10, Units: 1, AfterSeq: int64(10 * (i - 1)), UpTo: int64(10 * i),
			Detail: json.RawMessage(fmt.Sprintf(`{"table":"audit.events","rows":%d}`, 10))})
	}
	page := func(query string) ([]int64, historyPage) {
		t.Helper()
		var p historyPage
		e.do("GET", "/v1/work/"+x.ID+"/history"+query, e.read, "").wantStatus(t, 200).json(t, &p)
		var numbers []int64
		for _, rec := range p.Records {
			numbers = append(numbers, rec.Number)
		}
		return numbers, p
	}
	got, p := page("?limit=3")
	if !slices.Equal(got, []int64{5, 4, 3}) || !p.HasMore || p.Next != "3" {
		t.Errorf("first page %v %+v", got, p)
	}
	got, p = page("?limit=3&before=" + p.Next)
	if !slices.Equal(got, []int64{2, 1}) || p.HasMore || p.Next != "" {
		t.Errorf("second page %v %+v", got, p)
	}
	if got, _ = page(""); len(got) != 5 {
		t.Errorf("whole history %v", got)
	}
	for query, want := range map[string]string{"?before=x": "?before", "?before=0": "?before", "?limit=501": "?limit", "?next=3": "?next"} {
		pr := e.do("GET", "/v1/work/"+x.ID+"/history"+query, e.read, "").wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(pr), []string{want}) {
			t.Errorf("%s: %+v", query, pr.Errors)
		}
	}
	e.do("GET", "/v1/work/"+x.ID+"/history", e.ingest, "").wantStatus(t, 403)
	e.do("GET", "/v1/work/"+x.ID+"/history", e.other, "").wantStatus(t, 404)
}
