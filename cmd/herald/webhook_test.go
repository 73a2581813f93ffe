package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// These tests walk issue 6 against the real binary: a partner's endpoint
// (an httptest server) receives Herald's webhooks and checks each one
// with the Standard Webhooks reference library, not with Herald's code.

// lyticsSlackTemplate is the json_template of the Slack example in Lytics'
// "Audit Logs and Alerts" page (shared/seeds/lytics-audit-logs-and-alerts.txt),
// unchanged.
const lyticsSlackTemplate = `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`

// hook is one request a receiver got.
type hook struct {
	ID     string // its webhook-id
	Method string
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is a partner's webhook endpoint: it records every request
// and answers what answer says (200 "ok" without one).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hooks  []hook
	counts map[string]int
	// answer gets the request and how many times its webhook-id came,
	// this one included.
	answer func(h hook, n int) (int, string)
	delay  atomic.Int64 // nanoseconds each answer waits
}

// newReceiver starts a receiver. Start it before the server that sends
// to it, so that the server is killed first at cleanup.
func newReceiver(t *testing.T) *receiver {
	r := &receiver{counts: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return // the sender went away
	}
	h := hook{ID: req.Header.Get("webhook-id"), Method: req.Method, Header: req.Header.Clone(), Body: body, At: time.Now()}
	r.mu.Lock()
	r.counts[h.ID]++
	n := r.counts[h.ID]
	r.hooks = append(r.hooks, h)
	answer := r.answer
	r.mu.Unlock()
	if d := r.delay.Load(); d > 0 {
		time.Sleep(time.Duration(d))
	}
	code, text := http.StatusOK, "ok"
	if answer != nil {
		code, text = answer(h, n)
	}
	w.WriteHeader(code)
	io.WriteString(w, text)
}

func (r *receiver) setAnswer(f func(h hook, n int) (int, string)) {
	r.mu.Lock()
	r.answer = f
	r.mu.Unlock()
}

// all returns the requests received so far, in arrival order.
func (r *receiver) all() []hook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hooks)
}

// count returns how many requests came with webhook-id id.
func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

// total is the number of requests received.
func (r *receiver) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hooks)
}

// idCounts returns the number of requests per webhook-id.
func (r *receiver) idCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// hasAll reports whether every id in ids came at least once.
func (r *receiver) hasAll(ids []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if r.counts[id] == 0 {
			return false
		}
	}
	return true
}

// checkSigned verifies every request received with the Standard Webhooks
// library and secret, and that a wrong secret fails on them (the check
// is real).
func (r *receiver) checkSigned(t *testing.T, secret string) {
	t.Helper()
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("secret %q is not in whsec_ form", secret)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, err := standardwebhooks.NewWebhook("whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	hooks := r.all()
	if len(hooks) == 0 {
		t.Fatal("checkSigned: the receiver got no request")
	}
	for _, h := range hooks {
		if err := wh.Verify(h.Body, h.Header); err != nil {
			t.Errorf("request %s does not verify with the Standard Webhooks library: %v (headers %v)", h.ID, err, h.Header)
		}
		if err := other.Verify(h.Body, h.Header); err == nil {
			t.Errorf("request %s verifies with a secret it was not signed with", h.ID)
		}
		if h.Method != http.MethodPost || h.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s: %s with Content-Type %q, want POST application/json", h.ID, h.Method, h.Header.Get("Content-Type"))
		}
	}
}

// subscriptionInfo is a subscription as POST and GET /v1/subscriptions
// answer it.
type subscriptionInfo struct {
	ID          string `json:"id"`
	URL         string `json:"url"`
	Secret      string `json:"secret"`
	State       string `json:"state"`
	StateReason string `json:"stateReason"`
	Cursor      int64  `json:"cursor"`
}

// subscribe creates a subscription from body and returns it with its
// secret, which only this answer shows.
func (s *server) subscribe(body string) subscriptionInfo {
	s.t.Helper()
	var sub subscriptionInfo
	if err := json.Unmarshal(s.mustDo("POST", "/v1/subscriptions", []byte(body), 201), &sub); err != nil {
		s.t.Fatal(err)
	}
	if sub.ID == "" || !strings.HasPrefix(sub.Secret, "whsec_") || sub.State != "active" {
		s.t.Fatalf("POST /v1/subscriptions answered %+v: want an id, a whsec_ secret and state active", sub)
	}
	return sub
}

// subscription answers GET /v1/subscriptions/{id}, which must not show
// the secret.
func (s *server) subscription(id string) subscriptionInfo {
	s.t.Helper()
	b := s.mustDo("GET", "/v1/subscriptions/"+id, nil, 200)
	var sub subscriptionInfo
	if err := json.Unmarshal(b, &sub); err != nil {
		s.t.Fatal(err)
	}
	if sub.Secret != "" || bytes.Contains(b, []byte("whsec_")) {
		s.t.Fatalf("GET /v1/subscriptions/%s shows the secret: %s", id, b)
	}
	return sub
}

// attempt is one attempt as GET /v1/subscriptions/{id}/attempts shows it.
type attempt struct {
	ID         int64     `json:"id"`
	EventID    string    `json:"eventId"`
	Seq        int64     `json:"seq"`
	Number     int       `json:"number"`
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"`
	StatusCode int       `json:"statusCode"`
	Error      string    `json:"error"`
	Response   string    `json:"response"`
}

// attempts returns the subscription's attempts, oldest first (the API
// answers newest first).
func (s *server) attempts(subID, query string) []attempt {
	s.t.Helper()
	var page struct {
		Attempts []attempt `json:"attempts"`
		HasMore  bool      `json:"hasMore"`
	}
	path := "/v1/subscriptions/" + subID + "/attempts?limit=1000"
	if query != "" {
		path += "&" + query
	}
	if err := json.Unmarshal(s.mustDo("GET", path, nil, 200), &page); err != nil {
		s.t.Fatal(err)
	}
	if page.HasMore {
		s.t.Fatalf("GET %s has more than one page", path)
	}
	slices.Reverse(page.Attempts)
	return page.Attempts
}

// message is a message as GET /v1/subscriptions/{id}/messages shows it.
type message struct {
	EventID    string `json:"eventId"`
	Seq        int64  `json:"seq"`
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"lastStatus"`
	LastError  string `json:"lastError"`
}

func (s *server) messages(subID, query string) []message {
	s.t.Helper()
	var page struct {
		Messages []message `json:"messages"`
	}
	path := "/v1/subscriptions/" + subID + "/messages?limit=1000"
	if query != "" {
		path += "&" + query
	}
	if err := json.Unmarshal(s.mustDo("GET", path, nil, 200), &page); err != nil {
		s.t.Fatal(err)
	}
	return page.Messages
}

// waitCursor waits until the subscription's cursor reaches seq: every
// matching event up to it was delivered, given up on, or is a message,
// and the filter dropped the others. Nothing more comes of them.
func (s *server) waitCursor(subID string, seq int64) {
	s.t.Helper()
	poll(s.t, 15*time.Second, fmt.Sprintf("subscription %s cursor reaches %d", subID, seq), func() bool {
		return s.subscription(subID).Cursor >= seq
	})
}

// withT is s reporting to t: for a subtest using its parent's server.
func (s *server) withT(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// TestWebhookDeliversSignedEvents: each matching event arrives once,
// signed by the Standard Webhooks rules (checked by their Go library),
// its webhook-id the event id and its body the stored event's bytes; a
// Lytics Slack alert job, posted as Lytics writes it, gets the Slack body.
func TestWebhookDeliversSignedEvents(t *testing.T) {
	t.Parallel()
	byType, byCategory, slack := newReceiver(t), newReceiver(t), newReceiver(t)
	s := startServer(t, t.TempDir(), randomKey(), "--allow-private-targets")

	subType := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"types":["single*"]}}`, byType.URL))
	subCategory := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"categories":["gadgets"]},"headers":{"Authorization":"Bearer partner-token"}}`, byCategory.URL))
	lytics, _ := json.Marshal(map[string]any{
		"config": map[string]any{
			"system_event_type": "created",
			"webhook_url":       slack.URL,
			"json_template":     lyticsSlackTemplate,
		},
		"workflow": "webhook_system_events",
	})
	subSlack := s.subscribe(string(lytics))

	// GET shows no secret, and needs an admin key; …/secret shows it.
	s.subscription(subType.ID)
	var secrets struct {
		Secrets []struct {
			Secret string `json:"secret"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal(s.mustDo("GET", "/v1/subscriptions/"+subType.ID+"/secret", nil, 200), &secrets); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Secrets) != 1 || secrets.Secrets[0].Secret != subType.Secret {
		t.Fatalf("GET …/secret answered %+v, want the one secret POST answered", secrets)
	}
	var reader struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(s.mustDo("POST", "/v1/keys", []byte(`{"name":"reader","scopes":["read"]}`), 201), &reader); err != nil {
		t.Fatal(err)
	}
	readerServer := *s
	readerServer.Key = reader.Secret
	for _, path := range []string{"/v1/subscriptions", "/v1/subscriptions/" + subType.ID, "/v1/subscriptions/" + subType.ID + "/secret"} {
		if code, body, err := readerServer.do("GET", path, "", nil); err != nil || code != http.StatusForbidden {
			t.Errorf("GET %s with a read key: %d %s (%v), want 403", path, code, body, err)
		}
	}

	// Data with its own key order and number text, which must arrive as
	// it was stored.
	data := `{"z":"last first","amount":1.50,"big":12345678901234567890,"exp":1E3,"nested":{"b":[3,2,1],"a":"é\u00e9"}}`
	events := []struct {
		id, category, typ  string
		byType, byCategory bool
	}{
		{"wh-1", "widgets", "singleWidgetMade", true, false},
		{"wh-2", "gadgets", "singleGadgetMade", true, true},
		{"wh-3", "gadgets", "bulkGadgetMade", false, true},
		{"wh-4", "widgets", "bulkWidgetMade", false, false},
		// The last matches both, so that both cursors pass it.
		{"wh-5", "gadgets", "singleGadgetMade", true, true},
	}
	var wantType, wantCategory []string
	var lastSeq int64
	for _, e := range events {
		r := s.ingest(fmt.Sprintf(`{"id":%q,"category":%q,"type":%q,"coreCustomerId":"cust-1","data":%s}`, e.id, e.category, e.typ, data))
		lastSeq = max(lastSeq, r.Seq)
		if e.byType {
			wantType = append(wantType, e.id)
		}
		if e.byCategory {
			wantCategory = append(wantCategory, e.id)
		}
	}
	poll(t, 10*time.Second, "the type subscription receives "+strings.Join(wantType, ", "), func() bool { return byType.hasAll(wantType) })
	poll(t, 10*time.Second, "the category subscription receives "+strings.Join(wantCategory, ", "), func() bool { return byCategory.hasAll(wantCategory) })
	// Once the cursors are past the last event (the store reads only
	// the events of the category for one of them), every first attempt is
	// finished: nothing more comes.
	s.waitCursor(subType.ID, lastSeq)
	s.waitCursor(subCategory.ID, lastSeq)

	stored := map[string][]byte{}
	for _, e := range events {
		stored[e.id] = s.mustDo("GET", "/v1/events/"+e.id, nil, 200)
	}
	for _, c := range []struct {
		name string
		r    *receiver
		sub  subscriptionInfo
		want []string
	}{{"types [single*]", byType, subType, wantType}, {"categories [gadgets]", byCategory, subCategory, wantCategory}} {
		got := c.r.idCounts()
		want := map[string]int{}
		for _, id := range c.want {
			want[id] = 1
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: requests per webhook-id %v, want %v", c.name, got, want)
		}
		for _, h := range c.r.all() {
			if !bytes.Equal(h.Body, stored[h.ID]) {
				t.Errorf("%s: body of %s is\n%s\nwant GET /v1/events/%s:\n%s", c.name, h.ID, h.Body, h.ID, stored[h.ID])
			}
			if !bytes.Contains(h.Body, []byte(`"amount":1.50,"big":12345678901234567890,"exp":1E3`)) {
				t.Errorf("%s: body of %s lost the data's key order or number text: %s", c.name, h.ID, h.Body)
			}
		}
		c.r.checkSigned(t, c.sub.Secret)
	}
	for _, h := range byCategory.all() {
		if got := h.Header.Get("Authorization"); got != "Bearer partner-token" {
			t.Errorf("categories subscription: request %s has Authorization %q, want the subscription's header", h.ID, got)
		}
	}

	// The Slack alert: a key is created, its system event goes through
	// the Lytics template.
	var key struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.mustDo("POST", "/v1/keys", []byte(`{"name":"alerts","scopes":["read"]}`), 201), &key); err != nil {
		t.Fatal(err)
	}
	created := s.audit(url.Values{"subjectType": {"apikey"}, "subjectId": {key.ID}, "verb": {"created"}})
	if len(created) != 1 {
		t.Fatalf("audit has %d apikey created events for %s, want 1", len(created), key.ID)
	}
	poll(t, 10*time.Second, "the Slack subscription receives the apikey created event", func() bool { return slack.count(created[0].ID) > 0 })
	want := `{"text":"Alert notification: A work failed. For more info go to: https://activate.getlytics.com/data/integrations/work/` + key.ID + `?aid=default"}`
	for _, h := range slack.all() {
		if h.ID == created[0].ID && string(h.Body) != want {
			t.Errorf("Slack body\n%s\nwant\n%s", h.Body, want)
		}
		if !bytes.HasPrefix(h.Body, []byte(`{"text":"Alert notification: `)) {
			t.Errorf("Slack subscription got a body not from the template: %s", h.Body)
		}
	}
	if n := slack.count(created[0].ID); n != 1 {
		t.Errorf("the apikey created event came %d times, want 1", n)
	}
	if n := slack.count(events[0].id); n != 0 {
		t.Errorf("the Slack subscription, for system events, got the API event %s", events[0].id)
	}
	slack.checkSigned(t, subSlack.Secret)
	// The others are the created events stored after the subscription:
	// its own, the reader key's, the entity cust-1's.
	t.Logf("the Slack subscription got %d requests", slack.total())
}

// TestWebhookFailures: retries after 503 until a 200, with each attempt
// recorded; a 400 kills the message until a manual retry; a 410 disables
// the subscription and writes a subscription failed system event.
func TestWebhookFailures(t *testing.T) {
	t.Parallel()
	retry, dead, gone := newReceiver(t), newReceiver(t), newReceiver(t)
	s := startServer(t, t.TempDir(), randomKey(), "--allow-private-targets")

	t.Run("503 twice then 200", func(t *testing.T) {
		t.Parallel()
		s := s.withT(t)
		retry.setAnswer(func(h hook, n int) (int, string) {
			if n <= 2 {
				return http.StatusServiceUnavailable, fmt.Sprintf("busy, try again (%d)", n)
			}
			return http.StatusOK, fmt.Sprintf("thanks (%d)", n)
		})
		sub := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"types":["retryMe"]},"retrySchedule":["1s","1s"]}`, retry.URL))
		ev := s.ingest(`{"id":"retry-1","category":"tests","type":"retryMe"}`)
		poll(t, 15*time.Second, "three attempts, the last delivered", func() bool {
			as := s.attempts(sub.ID, "")
			return len(as) == 3 && as[2].Outcome == "delivered"
		})
		as := s.attempts(sub.ID, "")
		want := []attempt{
			{Number: 1, Outcome: "failed", StatusCode: 503, Error: "answered 503 Service Unavailable", Response: "busy, try again (1)"},
			{Number: 2, Outcome: "failed", StatusCode: 503, Error: "answered 503 Service Unavailable", Response: "busy, try again (2)"},
			{Number: 3, Outcome: "delivered", StatusCode: 200, Response: "thanks (3)"},
		}
		for i, a := range as {
			w := want[i]
			if a.EventID != ev.ID || a.Seq != ev.Seq || a.Number != w.Number || a.Outcome != w.Outcome ||
				a.StatusCode != w.StatusCode || a.Error != w.Error || a.Response != w.Response {
				t.Errorf("attempt %d: %+v, want %+v for event %s", i+1, a, w, ev.ID)
			}
		}
		// The schedule's 1 s waits, with at most 20 % jitter.
		for i := 1; i < len(as); i++ {
			if gap := as[i].At.Sub(as[i-1].At); gap < 750*time.Millisecond || gap > 5*time.Second {
				t.Errorf("attempt %d came %s after attempt %d, want about 1 s", i+1, gap, i)
			}
		}
		if got := retry.idCounts(); len(got) != 1 || got[ev.ID] != 3 {
			t.Errorf("receiver got %v, want 3 requests with webhook-id %s", got, ev.ID)
		}
		retry.checkSigned(t, sub.Secret)
		if ms := s.messages(sub.ID, ""); len(ms) != 0 {
			t.Errorf("messages left after the delivery: %+v", ms)
		}
		var stats struct {
			Delivered, Failed, Final      int
			PendingMessages, DeadMessages int
			SuccessRate                   *float64
		}
		if err := json.Unmarshal(s.mustDo("GET", "/v1/subscriptions/"+sub.ID+"/stats", nil, 200), &stats); err != nil {
			t.Fatal(err)
		}
		if stats.Delivered != 1 || stats.Failed != 2 || stats.Final != 0 || stats.PendingMessages != 0 || stats.DeadMessages != 0 {
			t.Errorf("stats %+v, want 1 delivered, 2 failed, nothing pending or dead", stats)
		}
	})

	t.Run("400 is dead until retried", func(t *testing.T) {
		t.Parallel()
		s := s.withT(t)
		dead.setAnswer(func(hook, int) (int, string) { return http.StatusBadRequest, `{"error":"unknown field"}` })
		sub := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"types":["deadMe"]},"retrySchedule":["1s","1s"]}`, dead.URL))
		ev := s.ingest(`{"id":"dead-1","category":"tests","type":"deadMe"}`)
		poll(t, 10*time.Second, "the message is dead", func() bool { return len(s.messages(sub.ID, "state=dead")) == 1 })
		ms := s.messages(sub.ID, "state=dead")
		if m := ms[0]; m.EventID != ev.ID || m.Attempts != 1 || m.LastStatus != 400 {
			t.Errorf("dead message %+v, want event %s after 1 attempt answered 400", m, ev.ID)
		}
		as := s.attempts(sub.ID, "")
		if len(as) != 1 || as[0].Outcome != "final" || as[0].StatusCode != 400 || as[0].Response != `{"error":"unknown field"}` {
			t.Fatalf("attempts %+v, want one final 400 with the response", as)
		}

		dead.setAnswer(nil) // fixed: 200
		var res struct {
			Retried int `json:"retried"`
		}
		if err := json.Unmarshal(s.mustDo("POST", "/v1/subscriptions/"+sub.ID+"/retry", []byte(`{}`), 200), &res); err != nil {
			t.Fatal(err)
		}
		if res.Retried != 1 {
			t.Errorf("retry answered %+v, want 1 retried", res)
		}
		poll(t, 10*time.Second, "the retried message is delivered", func() bool {
			as := s.attempts(sub.ID, "")
			return len(as) == 2 && as[1].Outcome == "delivered"
		})
		if n := dead.count(ev.ID); n != 2 {
			t.Errorf("receiver got %s %d times, want 2", ev.ID, n)
		}
		if ms := s.messages(sub.ID, ""); len(ms) != 0 {
			t.Errorf("messages left after the retry: %+v", ms)
		}
		dead.checkSigned(t, sub.Secret)
	})

	t.Run("410 disables", func(t *testing.T) {
		t.Parallel()
		s := s.withT(t)
		gone.setAnswer(func(hook, int) (int, string) { return http.StatusGone, "this endpoint was removed" })
		sub := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"types":["goneMe"]}}`, gone.URL))
		ev := s.ingest(`{"id":"gone-1","category":"tests","type":"goneMe"}`)
		poll(t, 10*time.Second, "the subscription is disabled", func() bool { return s.subscription(sub.ID).State == "disabled" })
		if got := s.subscription(sub.ID); !strings.Contains(got.StateReason, "410") {
			t.Errorf("stateReason %q does not name the 410", got.StateReason)
		}
		failed := s.audit(url.Values{"subjectType": {"subscription"}, "verb": {"failed"}})
		var found bool
		for _, e := range failed {
			found = found || e.PrimaryID == sub.ID
		}
		if !found {
			t.Errorf("GET /v1/audit?subjectType=subscription&verb=failed has no event for %s: %v", sub.ID, summaries(failed))
		}
		as := s.attempts(sub.ID, "")
		if len(as) != 1 || as[0].EventID != ev.ID || as[0].Outcome != "final" || as[0].StatusCode != 410 || as[0].Response != "this endpoint was removed" {
			t.Errorf("attempts %+v, want one final 410", as)
		}
		gone.checkSigned(t, sub.Secret)
	})
}

// TestWebhookSurvivesSIGKILLSQLite: Herald is killed while delivering
// and restarted on the same data; every event arrives.
func TestWebhookSurvivesSIGKILLSQLite(t *testing.T) {
	t.Parallel()
	const total = 200
	r := newReceiver(t)
	r.delay.Store(int64(20 * time.Millisecond))
	dir, key := t.TempDir(), randomKey()
	s := startServer(t, dir, key, "--allow-private-targets")
	sub := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"origin":"api"},"maxInFlight":4}`, r.URL))

	var ids []string
	var lastSeq int64
	for b := range 2 {
		var lines []string
		for i := range total / 2 {
			id := fmt.Sprintf("crash-%03d", b*total/2+i)
			ids = append(ids, id)
			lines = append(lines, fmt.Sprintf(`{"id":%q,"category":"gadgets","type":"singleGadgetMade","data":{"n":%d}}`, id, i))
		}
		code, body, err := s.do("POST", "/v1/events/batch", "application/x-ndjson", []byte(strings.Join(lines, "\n")))
		var res struct {
			Created int `json:"created"`
			Results []struct {
				Seq int64 `json:"seq"`
			} `json:"results"`
		}
		if err != nil || code/100 != 2 || json.Unmarshal(body, &res) != nil || res.Created != total/2 {
			t.Fatalf("batch: %d %s %v, want %d created", code, body, err, total/2)
		}
		for _, r := range res.Results {
			lastSeq = max(lastSeq, r.Seq)
		}
	}
	poll(t, 20*time.Second, "a quarter of the events arrive", func() bool { return len(r.idCounts()) >= total/4 })
	s.kill()
	killedAt := time.Now()
	before := len(r.idCounts())
	if before >= total {
		t.Fatalf("all %d events arrived before the kill: slow the receiver down", total)
	}

	s2 := startServer(t, dir, key, "--allow-private-targets")
	restarted := time.Now()
	nBefore := r.total()
	// The restarted server waits for the killed one's lease to run out
	// (15 s) before it delivers.
	poll(t, 45*time.Second, "every event arrives after the restart", func() bool { return r.hasAll(ids) })
	allAt := time.Now()
	firstAfter := r.all()[nBefore].At
	dups := 0
	for id, n := range r.idCounts() {
		if !slices.Contains(ids, id) {
			t.Errorf("unexpected webhook-id %q", id)
		}
		dups += n - 1
	}
	r.checkSigned(t, sub.Secret)
	// Nothing is left pending.
	s2.waitCursor(sub.ID, lastSeq)
	if ms := s2.messages(sub.ID, ""); len(ms) != 0 {
		t.Errorf("messages left: %+v", ms)
	}
	t.Logf("%d of %d distinct events arrived before SIGKILL; after restart (%.1fs after the kill) the first request came %.1fs later; all arrived %.1fs after the kill; %d duplicates",
		before, total, restarted.Sub(killedAt).Seconds(), firstAfter.Sub(restarted).Seconds(), allAt.Sub(killedAt).Seconds(), dups)
}

// TestWebhookTwoNodesPostgres: two servers on one database deliver each
// event once between them; when the one delivering is killed, the other
// takes over within 30 s and nothing is lost.
func TestWebhookTwoNodesPostgres(t *testing.T) {
	t.Parallel()
	dbURL := postgresTestURL(t)
	r := newReceiver(t)
	key := randomKey()
	a := startServer(t, t.TempDir(), key, "--db", dbURL, "--allow-private-targets")
	b := startServer(t, t.TempDir(), key, "--db", dbURL, "--allow-private-targets")
	nodes := []*server{a, b}
	sub := a.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"origin":"api"}}`, r.URL))

	// Both live: events sent to both, each delivered once.
	var phase1 []string
	var lastSeq int64
	sentAt := map[string]time.Time{}
	for i := range 60 {
		id := fmt.Sprintf("pg-%03d", i)
		phase1 = append(phase1, id)
		sentAt[id] = time.Now()
		ev := nodes[i%2].ingest(fmt.Sprintf(`{"id":%q,"category":"gadgets","type":"singleGadgetMade","data":{"n":%d}}`, id, i))
		lastSeq = max(lastSeq, ev.Seq)
	}
	poll(t, 20*time.Second, "every event sent while both live arrives", func() bool { return r.hasAll(phase1) })
	a.waitCursor(sub.ID, lastSeq)
	counts := r.idCounts()
	for _, id := range phase1 {
		if counts[id] != 1 {
			t.Errorf("while both live, %s arrived %d times, want once", id, counts[id])
		}
	}
	if len(counts) != len(phase1) {
		t.Errorf("receiver got %d distinct ids, want %d", len(counts), len(phase1))
	}
	var slowest time.Duration
	for _, h := range r.all() {
		slowest = max(slowest, h.At.Sub(sentAt[h.ID]))
	}

	// Which node holds the lease.
	holder, other := leaseHolder(t, dbURL, sub.ID, a, b)

	// An event stored alone by the node without the lease: how soon the
	// holder learns of it (without a word across nodes, at its next poll,
	// up to 5 s later).
	quietAt := time.Now()
	other.ingest(`{"id":"pg-quiet","category":"gadgets","type":"singleGadgetMade"}`)
	poll(t, 10*time.Second, "an event sent to the node without the lease arrives", func() bool { return r.count("pg-quiet") > 0 })
	crossNode := time.Since(quietAt)

	// Events keep coming, to both while both live, then to the survivor.
	var (
		mu      sync.Mutex
		acked   []string
		killed  atomic.Bool
		stop    = make(chan struct{})
		stopped = make(chan struct{})
	)
	stopSending := sync.OnceFunc(func() { close(stop) })
	defer stopSending()
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			n := []*server{a, b}[i%2]
			if killed.Load() {
				n = other
			}
			id := fmt.Sprintf("pg2-%04d", i)
			code, _, err := n.do("POST", "/v1/events", "application/json",
				[]byte(fmt.Sprintf(`{"id":%q,"category":"gadgets","type":"singleGadgetMade","data":{"n":%d}}`, id, i)))
			if err == nil && code == http.StatusCreated {
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}
	}()
	poll(t, 10*time.Second, "events flow before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	holder.kill()
	killed.Store(true)
	killedAt := time.Now()
	poll(t, 10*time.Second, "events flow after the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 100
	})
	stopSending()
	<-stopped
	sent := slices.Clone(acked)
	poll(t, time.Until(killedAt.Add(30*time.Second)), "every acknowledged event arrives within 30 s of the kill", func() bool { return r.hasAll(sent) })
	var done time.Time
	for _, h := range r.all() {
		done = h.At
	}
	counts = r.idCounts()
	dups := 0
	for _, id := range sent {
		dups += counts[id] - 1
	}
	for _, id := range phase1 {
		if counts[id] != 1 {
			t.Errorf("%s, delivered before the kill, arrived %d times", id, counts[id])
		}
	}
	r.checkSigned(t, sub.Secret)
	holderName := "a (subscribed on)"
	if holder == b {
		holderName = "b"
	}
	t.Logf("phase 1: %d events once each, slowest %.2fs from send to receive; one event alone on the node without the lease: %.2fs; lease holder %s killed; %d events sent in phase 2 (to both, then to the survivor), all arrived %.1fs after the kill; %d duplicates",
		len(phase1), slowest.Seconds(), crossNode.Seconds(), holderName, len(sent), done.Sub(killedAt).Seconds(), dups)
}

// leaseHolder returns the node whose engine holds subscription id's lease
// (its owner name carries the process id), and the other one.
func leaseHolder(t *testing.T, dbURL, id string, a, b *server) (holder, other *server) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var owner *string
	if err := conn.QueryRow(ctx, "SELECT lease_owner FROM subscriptions WHERE id = $1", id).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner == nil {
		t.Fatalf("subscription %s has no lease holder", id)
	}
	for _, pair := range [][2]*server{{a, b}, {b, a}} {
		if strings.Contains(*owner, fmt.Sprintf("-%d-", pair[0].cmd.Process.Pid)) {
			return pair[0], pair[1]
		}
	}
	t.Fatalf("lease owner %q is neither node (pids %d, %d)", *owner, a.cmd.Process.Pid, b.cmd.Process.Pid)
	return nil, nil
}

// TestWebhookRefusesPrivateTargets: without --allow-private-targets a
// loopback target is refused at connect time, also through a name, and
// the attempts say so.
func TestWebhookRefusesPrivateTargets(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	s := startServer(t, t.TempDir(), randomKey())
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	byIP := s.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"origin":"api"}}`, r.URL))
	byName := s.subscribe(fmt.Sprintf(`{"url":"http://localhost:%s/hook","filter":{"origin":"api"}}`, port))
	ev := s.ingest(`{"id":"ssrf-1","category":"tests","type":"probe"}`)
	for _, sub := range []subscriptionInfo{byIP, byName} {
		poll(t, 10*time.Second, "a failed attempt to "+sub.URL, func() bool { return len(s.attempts(sub.ID, "")) > 0 })
		a := s.attempts(sub.ID, "")[0]
		if a.EventID != ev.ID || a.Outcome != "failed" || a.StatusCode != 0 ||
			!strings.Contains(a.Error, "refused to connect to") || !strings.Contains(a.Error, "loopback") ||
			!strings.Contains(a.Error, "--allow-private-targets") {
			t.Errorf("attempt to %s: %+v, want a failed attempt whose error says the loopback address was refused", sub.URL, a)
		}
		if ms := s.messages(sub.ID, ""); len(ms) != 1 || ms[0].State != "retrying" {
			t.Errorf("messages of %s: %+v, want one retrying", sub.URL, ms)
		}
	}
	if n := r.total(); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}
