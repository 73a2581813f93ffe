package export

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
)

// lyticsSlackTemplate is the json_template of the Slack example in the
// Lytics document on system events, as it is there.
const lyticsSlackTemplate = `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

type received struct {
	id   string
	body []byte
}

// receiver is a webhook endpoint that checks signatures with the
// Standard Webhooks library, as a partner would, and answers status
// (200 when 0).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status int
}

func newReceiver(t *testing.T, secret string) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		rc.mu.Lock()
		rc.got = append(rc.got, received{id: r.Header.Get(delivery.HeaderID), body: body})
		status := rc.status
		rc.mu.Unlock()
		if r.Header.Get("X-Team") != "ops" {
			http.Error(w, "missing header", http.StatusBadRequest)
			return
		}
		if status != 0 {
			http.Error(w, "no thanks", status)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func (rc *receiver) answer(status int) {
	rc.mu.Lock()
	rc.status = status
	rc.mu.Unlock()
}

// hookTest returns a webhook export job, a receiver that knows its
// secret, and the job's writer (with the caller's client).
func hookTest(t *testing.T, template string) (*herald.Work, *receiver, Writer) {
	t.Helper()
	w := testWork("wrk_hook", "acct_1", herald.Destination{
		Type: herald.DestinationWebhook, Headers: map[string]string{"X-Team": "ops"}, JSONTemplate: template,
	})
	rc := newReceiver(t, w.Secret)
	w.Export.Destination.URL = rc.URL
	client := delivery.NewClient(delivery.ClientOptions{AllowPrivate: true})
	t.Cleanup(client.CloseIdleConnections)
	wr, err := Open(context.Background(), w, Options{Client: client, Templates: &delivery.Templates{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wr.Close() })
	return w, rc, wr
}

// reopen opens another writer for w, with a client of its own.
func reopen(t *testing.T, w *herald.Work) Writer {
	t.Helper()
	wr, err := Open(context.Background(), w, Options{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = wr.Close() })
	return wr
}

func TestWebhookBatch(t *testing.T) {
	t.Parallel()
	events := testEvents(t, "acct_1", 4)
	w, rc, wr := hookTest(t, "")

	for range 2 { // the second time: a unit written again after a crash
		raw, err := wr.Write(context.Background(), &Unit{Work: w, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		if d := decodeDetail(t, raw); d["status"] != float64(200) {
			t.Fatalf("detail %s", raw)
		}
	}
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	for _, r := range got {
		if r.id != "wrk_hook-10-19" {
			t.Errorf("webhook-id %q, want wrk_hook-10-19 (job, first and last seq)", r.id)
		}
	}
	if !bytes.Equal(got[0].body, got[1].body) {
		t.Errorf("the unit written again sent another body")
	}
	var body struct {
		Work   string            `json:"work"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Work != "wrk_hook" || len(body.Events) != len(events) {
		t.Fatalf("body %s", got[0].body)
	}
	for i, e := range body.Events {
		if !bytes.Equal(e, events[i].Body) {
			t.Errorf("event %d sent as %s, stored as %s", i, e, events[i].Body)
		}
	}
}

// TestWebhookTemplate: with a json_template, a unit of one event is sent
// as the rendered body alone (the Lytics Slack template works as it
// is), a larger one as an array of rendered bodies.
func TestWebhookTemplate(t *testing.T) {
	t.Parallel()
	var events []*herald.Event
	for i, notes := range []string{"sync timed out", ""} {
		data := map[string]any{"subject_id": "work-7", "aid": "acct-1"}
		if notes != "" {
			data["notes"] = notes
		}
		d, _ := json.Marshal(data)
		e := &herald.Event{ID: fmt.Sprintf("sys_%d", i), Seq: int64(100 + i), Category: "work", Type: "failed",
			OccurredAt: base, ReceivedAt: base, Origin: herald.OriginSystem, Data: d, AccountID: "acct_1"}
		e.Body, _ = herald.MarshalEvent(e)
		events = append(events, e)
	}
	w, rc, wr := hookTest(t, lyticsSlackTemplate)

	one := `{"text":"Alert notification: sync timed out. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`
	two := `{"text":"Alert notification: A work failed. For more info go to: https://activate.getlytics.com/data/integrations/work/work-7?aid=acct-1"}`
	for _, tc := range []struct {
		events []*herald.Event
		want   string
	}{
		{events[:1], one},
		{events, "[" + one + "," + two + "]"},
	} {
		if _, err := wr.Write(context.Background(), &Unit{Work: w, Events: tc.events}); err != nil {
			t.Fatal(err)
		}
		got := rc.requests()
		if last := got[len(got)-1]; string(last.body) != tc.want {
			t.Errorf("body %s, want %s", last.body, tc.want)
		}
	}

	// A template that fails on an event fails the same way every time.
	w.Export.Destination.JSONTemplate = `{"amount": event.data.amount}`
	if _, err := reopen(t, w).Write(context.Background(), &Unit{Work: w, Events: events[:1]}); !IsPermanent(err) {
		t.Errorf("template error: %v, want a permanent error", err)
	}
}

func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	events := testEvents(t, "acct_1", 2)
	w, rc, wr := hookTest(t, "")

	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusNotFound, true},
		{http.StatusGone, true},
		{http.StatusRequestTimeout, false},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusServiceUnavailable, false},
	} {
		rc.answer(tc.status)
		_, err := wr.Write(context.Background(), &Unit{Work: w, Events: events})
		if err == nil || IsPermanent(err) != tc.permanent || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
			t.Errorf("answer %d: %v, want permanent %v", tc.status, err, tc.permanent)
		}
	}

	// A signature the receiver rejects is a 401: permanent.
	other := *w
	other.Secret = herald.NewSigningSecret()
	rc.answer(0)
	if _, err := reopen(t, &other).Write(context.Background(), &Unit{Work: &other, Events: events}); !IsPermanent(err) || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("wrong secret: %v", err)
	}

	// No answer in time: retryable.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	w.Export.Destination.URL = slow.URL
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := reopen(t, w).Write(ctx, &Unit{Work: w, Events: events}); err == nil || IsPermanent(err) {
		t.Errorf("timeout: %v, want a retryable error", err)
	}

	// A loopback address without AllowPrivate: refused, for good.
	w.Export.Destination.URL = rc.URL
	wr4, err := Open(context.Background(), w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wr4.Close()
	if _, err := wr4.Write(context.Background(), &Unit{Work: w, Events: events}); !IsPermanent(err) || !strings.Contains(err.Error(), "refused to connect") {
		t.Errorf("loopback: %v, want a permanent refusal", err)
	}
}
