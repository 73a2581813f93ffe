package work

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/notify/notifytest"
)

// declines appends one transfers/declined event received at each of
// t0+offsets.
func (v *env) declines(t0 time.Time, offsets ...time.Duration) []*herald.Event {
	v.t.Helper()
	var out []*herald.Event
	for _, d := range offsets {
		out = append(out, v.appendAt(t0.Add(d), map[string]any{
			"category": "transfers", "type": "declined", "data": map[string]any{"amount": 99},
		})...)
	}
	return out
}

// TestAlertThresholdWindowCooldown: an alert fires when its threshold of
// matching events falls within its window, once; during its cooldown it
// keeps quiet and counts what it suppressed; after, it fires again.
func TestAlertThresholdWindowCooldown(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, nil)
	job := v.create(&herald.Work{
		Kind: herald.WorkAlert, Name: "declines",
		Filter: herald.Filter{Categories: []string{"transfers"}, Types: []string{"declined"}},
		Alert: &herald.AlertConfig{
			Threshold: 3, Window: dur(time.Minute), Cooldown: dur(10 * time.Minute),
			Target: herald.Target{Kind: herald.TargetWebhook, URL: rc.srv.URL}, RetrySchedule: schedule(2, 20*time.Millisecond),
		},
	})
	reg := prometheus.NewRegistry()
	e := v.start(nil, Options{Registerer: reg})
	t0 := v.clock.Now()
	readTo := func(what string, ev *herald.Event, cond func(rt herald.WorkRuntime) bool) *herald.Work {
		t.Helper()
		e.Notify(acct)
		return v.waitWork(job.ID, what, func(w *herald.Work) bool {
			return w.Runtime.Cursor >= ev.Seq && w.Runtime.Firing == nil && cond(w.Runtime)
		})
	}

	// Two within a minute, and a third too late for them; other types do
	// not count.
	v.declines(t0, 0, 10*time.Second, 2*time.Minute)
	other := v.transfers(3)
	w := readTo("no firing", other[2], func(rt herald.WorkRuntime) bool { return true })
	if w.Runtime.Firings != 0 || len(w.Runtime.Recent) != 1 {
		t.Fatalf("runtime %+v, want no firing and one recent event", w.Runtime)
	}

	// Two more within the third's minute: it fires.
	fire := v.declines(t0, 2*time.Minute+10*time.Second, 2*time.Minute+20*time.Second)
	readTo("first firing", fire[1], func(rt herald.WorkRuntime) bool { return rt.Firings == 1 })

	// Three more within the cooldown: quiet.
	quiet := v.declines(t0, 3*time.Minute, 3*time.Minute+10*time.Second, 3*time.Minute+20*time.Second)
	w = readTo("suppressed", quiet[2], func(rt herald.WorkRuntime) bool { return rt.Suppressed == 1 })
	if w.Runtime.Firings != 1 {
		t.Fatalf("runtime %+v, want the cooldown to keep the alert quiet", w.Runtime)
	}

	// After the cooldown, it fires again.
	again := v.declines(t0, 15*time.Minute, 15*time.Minute+time.Second, 15*time.Minute+2*time.Second)
	w = readTo("second firing", again[2], func(rt herald.WorkRuntime) bool { return rt.Firings == 2 })
	if w.Runtime.Suppressed != 1 || w.Runtime.LastFiredAt == nil || !w.Runtime.LastFiredAt.Equal(again[2].ReceivedAt) {
		t.Errorf("runtime %+v", w.Runtime)
	}

	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	hook, err := standardwebhooks.NewWebhook(job.Secret)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if err := hook.Verify(r.body, r.header); err != nil {
			t.Errorf("request %d: signature: %v", i, err)
		}
	}
	if id := reqs[0].header.Get("webhook-id"); id != job.ID+"-f1" {
		t.Errorf("webhook-id %q, want %q", id, job.ID+"-f1")
	}
	var body struct {
		Alert map[string]any  `json:"alert"`
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	wantAlert := map[string]any{
		"id": job.ID, "name": "declines", "count": 3.0, "threshold": 3.0, "window": "1m0s",
		"firedAt": fire[1].ReceivedAt.Format(time.RFC3339Nano),
	}
	if !maps.Equal(body.Alert, wantAlert) {
		t.Errorf("alert %v, want %v", body.Alert, wantAlert)
	}
	if string(body.Event) != string(fire[1].Body) {
		t.Errorf("event %s, want the stored body %s", body.Event, fire[1].Body)
	}
	notes := v.notes(job.ID, herald.VerbSynced)
	if len(notes) != 2 || notes[0] != "alert fired: 3 matching events within 1m; sent by webhook" {
		t.Errorf("synced notes %q", notes)
	}
	recs := v.records(job.ID)
	if len(recs) != 2 || recs[0].Kind != herald.RecordFiring || recs[0].State != herald.RecordSucceeded || recs[0].Events != 3 {
		t.Errorf("records %+v", recs)
	}
	if got := testutil.ToFloat64(e.metrics.firings.WithLabelValues(firingSent)); got != 2 {
		t.Errorf("firings sent metric %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.metrics.firings.WithLabelValues(firingSuppressed)); got != 1 {
		t.Errorf("firings suppressed metric %v, want 1", got)
	}
}

// TestAlertEmail: an alert sent by email through an SMTP server that
// requires STARTTLS and AUTH arrives with the default subject and text.
func TestAlertEmail(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	srv := notifytest.NewSMTPServer(t)
	job := v.create(&herald.Work{
		Kind: herald.WorkAlert, Name: "big transfer",
		Filter: herald.Filter{Categories: []string{"transfers"}},
		Alert:  &herald.AlertConfig{Threshold: 1, Target: srv.Target("alerts@example.com", "risk@example.com")},
	})
	e := v.start(nil, Options{})
	ev := v.transfers(1)[0]
	e.Notify(acct)
	mails := srv.Wait(t, 1)
	m := mails[0]
	if m.From != "alerts@example.com" || !slices.Equal(m.To, []string{"risk@example.com"}) || m.Subject != "Herald alert: big transfer" {
		t.Errorf("mail from %q to %v subject %q", m.From, m.To, m.Subject)
	}
	if want := "big transfer: 1 matching event (last: transfers/single " + ev.ID + ")"; strings.TrimSpace(m.Text) != want {
		t.Errorf("text %q, want %q", m.Text, want)
	}
	w := v.waitWork(job.ID, "sent", func(w *herald.Work) bool { return w.Runtime.Firings == 1 && w.Runtime.Firing == nil })
	if lc := w.Runtime.LastCycle; lc == nil || lc.State != herald.RecordSucceeded || !strings.Contains(string(lc.Detail), "risk@example.com") {
		t.Errorf("last firing %+v", lc)
	}
	if n := v.notes(job.ID, herald.VerbSynced); len(n) != 1 || n[0] != "alert fired: 1 matching event; sent by email" {
		t.Errorf("synced notes %q", n)
	}
	for _, e := range v.audit(job.ID) {
		if strings.Contains(string(e.Body), srv.Password) {
			t.Errorf("system event %s holds the SMTP password: %s", e.Type, e.Body)
		}
	}
}

// TestAlertTargetFails: a message the target keeps refusing is tried by
// the retry schedule, then the firing fails (system event failed with the
// reason) and the alert stays active.
func TestAlertTargetFails(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	rc := newReceiver(t, func(int) int { return http.StatusServiceUnavailable })
	job := v.create(&herald.Work{
		Kind: herald.WorkAlert, Filter: herald.Filter{Categories: []string{"transfers"}},
		Alert: &herald.AlertConfig{
			Threshold: 1, Target: herald.Target{Kind: herald.TargetWebhook, URL: rc.srv.URL},
			RetrySchedule: schedule(2, 20*time.Millisecond),
		},
	})
	e := v.start(nil, Options{})
	v.transfers(1)
	e.Notify(acct)
	w := v.waitWork(job.ID, "firing failed", func(w *herald.Work) bool { return w.Runtime.Failures == 1 && w.Runtime.Firing == nil })
	if w.State != herald.WorkActive || w.Runtime.Firings != 1 {
		t.Errorf("state %s, runtime %+v: the alert stays active", w.State, w.Runtime)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (the first and two retries)", len(reqs))
	}
	for _, r := range reqs {
		if r.header.Get("webhook-id") != job.ID+"-f1" {
			t.Errorf("webhook-id %q: one message, one id", r.header.Get("webhook-id"))
		}
	}
	notes := v.notes(job.ID, herald.VerbFailed)
	if len(notes) != 1 || !strings.Contains(notes[0], "after 3 attempts") || !strings.Contains(notes[0], "503") {
		t.Errorf("failed notes %q", notes)
	}
	recs := v.records(job.ID)
	if len(recs) != 1 || recs[0].State != herald.RecordFailed || recs[0].Attempts != 3 || recs[0].Error == "" {
		t.Errorf("records %+v", recs)
	}
}

// lyticsSlackTemplate is the json_template of Lytics' Slack example, as
// the Lytics document has it.
const lyticsSlackTemplate = `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

// TestLyticsSlackAlert: Lytics' Slack example, as an alert on failed
// system events, posts the failure of an export to Slack.
func TestLyticsSlackAlert(t *testing.T) {
	t.Parallel()
	v := newEnv(t)
	slack := newReceiver(t, nil)
	alert := v.create(&herald.Work{
		Kind: herald.WorkAlert, Filter: herald.Filter{SystemEventType: "failed"},
		Alert: &herald.AlertConfig{Target: herald.Target{
			Kind: herald.TargetSlack, WebhookURL: slack.srv.URL + "/services/T000/B000/XXXX", JSONTemplate: lyticsSlackTemplate,
		}},
	})
	broken := newReceiver(t, func(int) int { return http.StatusNotFound })
	v.transfers(1)
	exp := v.create(&herald.Work{
		Kind: herald.WorkExport, Filter: herald.Filter{Categories: []string{"transfers"}},
		Export: &herald.ExportConfig{
			Mode: herald.ExportOnce, BatchSize: 10,
			Destination: herald.Destination{Type: herald.DestinationWebhook, URL: broken.srv.URL},
		},
	})
	v.start(nil, Options{})
	failed := v.waitWork(exp.ID, "export failed", func(w *herald.Work) bool { return w.State == herald.WorkFailed })
	v.waitWork(alert.ID, "alert sent", func(w *herald.Work) bool { return w.Runtime.Firings == 1 && w.Runtime.Firing == nil })
	reqs := slack.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d Slack requests, want 1", len(reqs))
	}
	var got map[string]any
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatalf("body %s: %v", reqs[0].body, err)
	}
	want := map[string]any{"text": "Alert notification: " + failed.StateReason +
		". For more info go to: https://activate.getlytics.com/data/integrations/work/" + exp.ID + "?aid=" + acct}
	if !maps.Equal(got, want) {
		t.Errorf("Slack body %v, want %v", got, want)
	}
	if reqs[0].header.Get("webhook-signature") != "" {
		t.Errorf("a Slack request is not signed")
	}
	if n := v.notes(alert.ID, herald.VerbSynced); len(n) != 1 || n[0] != "alert fired: 1 matching event; sent by slack" {
		t.Errorf("synced notes %q", n)
	}
}
