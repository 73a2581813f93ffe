package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lyticsSlackTemplate is the json_template of the Slack example in the
// Lytics document on system events, as it is there.
const lyticsSlackTemplate = `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

// systemEvent returns a work-failed system event as a store holds it.
func systemEvent(t *testing.T, notes string) *herald.Event {
	t.Helper()
	e, err := herald.SystemEvent{
		AccountID: "acct-1", SubjectType: herald.SubjectWork, SubjectID: "work-7", Verb: herald.VerbFailed,
		At: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Notes: notes,
	}.Event()
	if err != nil {
		t.Fatal(err)
	}
	e.Seq = 42
	if e.Body, err = herald.MarshalEvent(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// newSender returns a Sender whose webhook client may reach the test
// receivers on loopback.
func newSender(t *testing.T, allowPrivate bool) *Sender {
	t.Helper()
	client := delivery.NewClient(delivery.ClientOptions{AllowPrivate: allowPrivate})
	t.Cleanup(client.CloseIdleConnections)
	return New(Options{Client: client, AllowPrivate: allowPrivate})
}

// request is one request a receiver got.
type request struct {
	header http.Header
	body   []byte
}

// receiver is an HTTP endpoint answering with status and body, and
// keeping what it got.
type receiver struct {
	URL  string
	mu   sync.Mutex
	reqs []request
}

func newReceiver(t *testing.T, respond func(w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{r.Header.Clone(), b})
		rc.mu.Unlock()
		respond(w)
	}))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func answer(status int, body string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestWebhookSigned: a webhook is signed so that the Standard Webhooks
// library verifies it (with either secret of a rotated pair), carries the
// target's headers and the message id, and its body is the template's
// output, the message's Body or the event.
func TestWebhookSigned(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, answer(200, "ok"))
	s := newSender(t, true)
	current, old := herald.NewSigningSecret(), herald.NewSigningSecret()
	e := systemEvent(t, "disk full")
	for _, tc := range []struct {
		name     string
		template string
		msg      Message
		want     string
	}{
		{"event", "", Message{Event: e}, string(e.Body)},
		{"body", "", Message{Event: e, Body: json.RawMessage(`{"alert":"x"}`)}, `{"alert":"x"}`},
		{"template", `{"subject": event.data.subject_id, "prev": steps.fetch.status, "alert": alert}`,
			Message{Event: e, Vars: delivery.Vars{Steps: json.RawMessage(`{"fetch":{"status":201}}`)}},
			`{"alert":null,"prev":201,"subject":"work-7"}`},
	} {
		tc.msg.ID, tc.msg.Secrets = "run-1-"+tc.name, []string{current, old}
		target := herald.Target{Kind: herald.TargetWebhook, URL: rc.URL + "/hook", JSONTemplate: tc.template,
			Headers: map[string]string{"X-Team": "risk", "Authorization": "Bearer t0ken"}}
		res, err := s.Send(context.Background(), target, &tc.msg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.StatusCode != 200 || string(res.Output) != `{"status":200,"response":"ok"}` {
			t.Errorf("%s: result %d %s", tc.name, res.StatusCode, res.Output)
		}
		reqs := rc.requests()
		got := reqs[len(reqs)-1]
		if string(got.body) != tc.want {
			t.Errorf("%s: body\n got %s\nwant %s", tc.name, got.body, tc.want)
		}
		for _, secret := range []string{current, old} {
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(got.body, got.header); err != nil {
				t.Errorf("%s: the library rejects the signature: %v", tc.name, err)
			}
		}
		if id := got.header.Get(delivery.HeaderID); id != tc.msg.ID {
			t.Errorf("%s: webhook-id %q", tc.name, id)
		}
		if got.header.Get("X-Team") != "risk" || got.header.Get("Authorization") != "Bearer t0ken" ||
			got.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: headers %v", tc.name, got.header)
		}
	}
}

// TestWebhookFailures: which answers are worth another try.
func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	s := newSender(t, true)
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{500, false}, {503, false}, {408, false}, {429, false}, {302, false},
		{400, true}, {401, true}, {404, true}, {410, true},
	} {
		rc := newReceiver(t, func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(tc.status)
			io.WriteString(w, "nope")
		})
		res, err := s.Send(context.Background(), herald.Target{Kind: herald.TargetWebhook, URL: rc.URL}, &Message{ID: "m1"})
		if err == nil || IsPermanent(err) != tc.permanent {
			t.Errorf("%d: error %v, permanent %v, want permanent %v", tc.status, err, IsPermanent(err), tc.permanent)
			continue
		}
		if res == nil || res.StatusCode != tc.status || res.Response != "nope" {
			t.Errorf("%d: result %+v", tc.status, res)
			continue
		}
		if wantWait := tc.status == 429 || tc.status == 503; wantWait != (res.RetryAfter == 7*time.Second) {
			t.Errorf("%d: RetryAfter %s", tc.status, res.RetryAfter)
		}
	}
}

// TestTemplateErrorsArePermanent: a template that does not compile or
// fails on the event is not retried, and nothing is sent.
func TestTemplateErrorsArePermanent(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, answer(200, ""))
	s := newSender(t, true)
	for _, tmpl := range []string{`{"a": }`, `{"a": event.data.missing}`, `error "no"`} {
		for _, kind := range []string{herald.TargetWebhook, herald.TargetSlack} {
			res, err := s.Send(context.Background(), herald.Target{Kind: kind, URL: rc.URL, JSONTemplate: tmpl}, &Message{Event: systemEvent(t, "")})
			if !IsPermanent(err) || res != nil {
				t.Errorf("%s %q: %v, %+v", kind, tmpl, err, res)
			}
		}
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// TestSlackLyticsTemplate: the Lytics Slack example, given as Lytics
// gives it (webhook_url), posts what the template makes, byte for byte,
// unsigned.
func TestSlackLyticsTemplate(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, answer(200, "ok"))
	s := newSender(t, true)
	for _, tc := range []struct {
		notes, want string
	}{
		{"sync timed out", `{"text":"Alert notification: sync timed out. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`},
		{"", `{"text":"Alert notification: A work failed. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`},
	} {
		target := herald.Target{Kind: herald.TargetSlack, WebhookURL: rc.URL + "/services/T0/B0/x", JSONTemplate: lyticsSlackTemplate}
		_, err := s.Send(context.Background(), target, &Message{ID: "f-1", Event: systemEvent(t, tc.notes), Secrets: []string{herald.NewSigningSecret()}})
		if err != nil {
			t.Fatal(err)
		}
		reqs := rc.requests()
		got := reqs[len(reqs)-1]
		if string(got.body) != tc.want {
			t.Errorf("body\n got %s\nwant %s", got.body, tc.want)
		}
		if sig := got.header.Get(delivery.HeaderSignature); sig != "" {
			t.Errorf("a Slack request is signed: %q", sig)
		}
	}

	// Without a template, the message's text; a template's string is
	// the text too.
	for _, tc := range []struct {
		template, want string
	}{
		{"", `{"text":"3 failures within 1h"}`},
		{`"%s failed" % event.data.subject_id`, `{"text":"work-7 failed"}`},
	} {
		target := herald.Target{Kind: herald.TargetSlack, URL: rc.URL, JSONTemplate: tc.template}
		if _, err := s.Send(context.Background(), target, &Message{Event: systemEvent(t, ""), Text: "3 failures within 1h"}); err != nil {
			t.Fatal(err)
		}
		reqs := rc.requests()
		if got := reqs[len(reqs)-1].body; string(got) != tc.want {
			t.Errorf("template %q: body %s, want %s", tc.template, got, tc.want)
		}
	}
}

// TestWebhookPrivateRefused: without AllowPrivate, a webhook to loopback
// is refused before connecting.
func TestWebhookPrivateRefused(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t, answer(200, ""))
	s := newSender(t, false)
	_, err := s.Send(context.Background(), herald.Target{Kind: herald.TargetWebhook, URL: rc.URL}, &Message{})
	var blocked *delivery.BlockedAddressError
	if !errors.As(err, &blocked) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %v, want a refused loopback address", err)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests reached the receiver", n)
	}
}

func TestUnknownKind(t *testing.T) {
	t.Parallel()
	if _, err := newSender(t, true).Send(context.Background(), herald.Target{Kind: "pager"}, &Message{}); !IsPermanent(err) {
		t.Fatalf("error %v, want permanent", err)
	}
}
