package delivery

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const acct = "acct-1"

// received is one request as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
	status int
}

// event is the part of a delivered event body the tests look at.
type event struct {
	ID               string `json:"id"`
	Seq              int64  `json:"seq"`
	EventLifecycleID string `json:"eventLifecycleId"`
}

func (r received) event(t *testing.T) event {
	t.Helper()
	var e event
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return e
}

// receiver is a webhook endpoint; respond decides each answer from the
// request and how many came before it.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []received
	respond func(r received, n int, h http.Header) (int, string)
}

// newReceiver starts an endpoint; respond (nil: 200) returns the status
// and body of each answer and may set headers.
func newReceiver(t *testing.T, respond func(r received, n int, h http.Header) (int, string)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got := received{header: r.Header.Clone(), body: body, at: time.Now()}
		rc.mu.Lock()
		n := len(rc.reqs)
		rc.reqs = append(rc.reqs, got)
		rc.mu.Unlock()
		status, answer := http.StatusOK, ""
		if rc.respond != nil {
			status, answer = rc.respond(got, n, w.Header())
		}
		rc.mu.Lock()
		rc.reqs[n].status = status
		rc.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
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
		time.Sleep(5 * time.Millisecond)
	}
}

func startEngine(t *testing.T, store Store, opts Options) *Engine {
	t.Helper()
	opts.Store = store
	if !opts.AllowPrivate && opts.Client == nil {
		opts.AllowPrivate = true
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 300 * time.Millisecond
	}
	if opts.PollInterval == 0 {
		// Long: the tests show that Notify, not a poll, sends events.
		opts.PollInterval = time.Hour
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.Start()
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// holds reports whether e runs a deliverer for the subscription.
func (e *Engine) holds(id string) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	d := e.current[subKey{acct, id}]
	return d != nil && !d.exited()
}

func ms(n int) herald.Duration { return herald.Duration(time.Duration(n) * time.Millisecond) }

func schedule(n int, wait herald.Duration) []herald.Duration {
	s := make([]herald.Duration, n)
	for i := range s {
		s[i] = wait
	}
	return s
}

func subscription(id, url string) *herald.Subscription {
	return &herald.Subscription{
		ID: id, AccountID: acct, URL: url,
		RetrySchedule: schedule(3, ms(20)),
		Timeout:       herald.Duration(5 * time.Second),
	}
}

func secret(s string) herald.SigningSecret { return herald.SigningSecret{Secret: s} }

func apiEvent(category, typ string, data string) *herald.Event {
	return &herald.Event{ID: herald.NewEventID(), Category: category, Type: typ, Data: json.RawMessage(data)}
}

// TestDeliverSigned: every matching event arrives once, signed so that the
// Standard Webhooks library accepts it, with the stored body byte for byte.
func TestDeliverSigned(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	current, rotated := herald.NewSigningSecret(), herald.NewSigningSecret()
	rc := newReceiver(t, nil)
	sub := subscription("sub-1", rc.srv.URL+"/hook")
	sub.Filter = herald.Filter{Categories: []string{"transfers"}}
	sub.Headers = map[string]string{"X-Partner": "bank-7"}
	store.addSubscription(sub, secret(current), secret(rotated))
	reg := prometheus.NewRegistry()
	eng := startEngine(t, store, Options{Registerer: reg})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })

	var want []*herald.Event
	for i := range 10 {
		e := apiEvent("transfers", "single", fmt.Sprintf(`{"z":1,"amount":12.50,"n":%d,"a":[1e3, "é<>&"]}`, i))
		store.appendEvents(acct, e, apiEvent("logins", "login", `{}`))
		want = append(want, e)
		eng.Notify(acct)
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		n := len(rc.requests())
		return n >= len(want), fmt.Sprintf("%d of %d requests", n, len(want))
	})

	reqs := rc.requests()
	if len(reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(reqs), len(want))
	}
	byID := map[string]*herald.Event{}
	for _, e := range want {
		byID[e.ID] = e
	}
	whCurrent, _ := standardwebhooks.NewWebhook(current)
	whRotated, _ := standardwebhooks.NewWebhook(rotated)
	for _, r := range reqs {
		id := r.header.Get(HeaderID)
		e := byID[id]
		if e == nil {
			t.Fatalf("webhook-id %q is no stored event", id)
		}
		delete(byID, id)
		if string(r.body) != string(e.Body) {
			t.Errorf("body\n %s\nwant the stored\n %s", r.body, e.Body)
		}
		if err := whCurrent.Verify(r.body, r.header); err != nil {
			t.Errorf("current secret: %v", err)
		}
		if err := whRotated.Verify(r.body, r.header); err != nil {
			t.Errorf("rotated secret: %v", err)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
		if got := r.header.Get("X-Partner"); got != "bank-7" {
			t.Errorf("X-Partner %q", got)
		}
	}
	// The store selects by category, so the cursor stands at the last
	// transfer, not at the login after it: it moves on with the next one.
	last := want[len(want)-1].Seq
	waitFor(t, 5*time.Second, func() (bool, string) {
		c := store.subscription(acct, "sub-1").Cursor
		return c == last, fmt.Sprintf("cursor %d, want %d", c, last)
	})
	atts := store.attemptsOf(acct, "sub-1")
	if len(atts) != len(want) {
		t.Fatalf("%d attempts recorded, want %d", len(atts), len(want))
	}
	for _, a := range atts {
		if a.Outcome != herald.AttemptDelivered || a.StatusCode != 200 || a.Number != 1 || a.LatencyMicros <= 0 {
			t.Errorf("attempt %+v", a)
		}
	}
	if ms := store.messagesOf(acct, "sub-1"); len(ms) != 0 {
		t.Errorf("%d messages left", len(ms))
	}
	if n := testutil.ToFloat64(eng.metrics.deliveries.WithLabelValues(acct, "sub-1", herald.AttemptDelivered)); n != float64(len(want)) {
		t.Errorf("delivered counter %v", n)
	}
	if n := testutil.CollectAndCount(eng.metrics.latency); n != 1 {
		t.Errorf("%d latency series", n)
	}
}

// TestRetryThenSuccess: 500, 500, then 200: two failed attempts on the
// schedule, one delivered, the message finished, and the subscription
// recovered.
func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, func(_ received, n int, _ http.Header) (int, string) {
		if n < 2 {
			return http.StatusInternalServerError, ""
		}
		return http.StatusOK, ""
	})
	sub := subscription("sub-1", rc.srv.URL)
	sub.RetrySchedule = schedule(3, ms(50))
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	e := apiEvent("transfers", "single", `{"a":1}`)
	store.appendEvents(acct, e)
	eng.Notify(acct)

	waitFor(t, 5*time.Second, func() (bool, string) {
		atts := store.attemptsOf(acct, "sub-1")
		return len(atts) == 3 && len(store.messagesOf(acct, "sub-1")) == 0, fmt.Sprintf("%d attempts", len(atts))
	})
	atts := store.attemptsOf(acct, "sub-1")
	for i, want := range []string{herald.AttemptFailed, herald.AttemptFailed, herald.AttemptDelivered} {
		if a := atts[i]; a.Outcome != want || a.Number != i+1 || a.EventID != e.ID {
			t.Errorf("attempt %d: %+v, want %s", i+1, a, want)
		}
	}
	if atts[0].StatusCode != 500 || atts[0].Error != "answered 500 Internal Server Error" {
		t.Errorf("first attempt %+v", atts[0])
	}
	reqs := rc.requests()
	for i := 1; i < len(reqs); i++ {
		// 50 ms with at most 20 % jitter.
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < 40*time.Millisecond {
			t.Errorf("retry %d after %s, before its schedule", i, gap)
		}
		if reqs[i].header.Get(HeaderID) != e.ID {
			t.Errorf("retry %d has webhook-id %q", i, reqs[i].header.Get(HeaderID))
		}
	}
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := store.subscription(acct, "sub-1")
		store.mu.Lock()
		recovered := store.recovered
		store.mu.Unlock()
		return s.FailingSince == nil && recovered == 1, fmt.Sprintf("failingSince %v, recovered %d", s.FailingSince, recovered)
	})
}

// TestFinal4xxIsDead: a 400 ends that message at once; the others go on.
func TestFinal4xxIsDead(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	var bad string
	rc := newReceiver(t, func(r received, _ int, _ http.Header) (int, string) {
		if r.header.Get(HeaderID) == bad {
			return http.StatusBadRequest, `{"error":"unknown account"}`
		}
		return http.StatusNoContent, ""
	})
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	evs := []*herald.Event{apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`)}
	bad = evs[1].ID
	store.appendEvents(acct, evs...)
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		c := store.subscription(acct, "sub-1").Cursor
		return c == evs[2].Seq, fmt.Sprintf("cursor %d", c)
	})
	ms := store.messagesOf(acct, "sub-1")
	if len(ms) != 1 || ms[0].EventID != bad || ms[0].State != herald.MessageDead || ms[0].Attempts != 1 || ms[0].LastStatus != 400 {
		t.Fatalf("messages %+v, want the 400 one dead", ms)
	}
	var final *herald.Attempt
	for _, a := range store.attemptsOf(acct, "sub-1") {
		if a.EventID == bad {
			final = a
		}
	}
	if final == nil || final.Outcome != herald.AttemptFinal || final.Response != `{"error":"unknown account"}` {
		t.Fatalf("attempt %+v", final)
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d requests, want 3 (no retry of the 400)", n)
	}

	// Retried by hand once the endpoint is fixed, it is delivered.
	bad = ""
	if n, err := store.RetryMessages(t.Context(), acct, "sub-1", herald.MessageFilter{}, time.Now()); n != 1 || err != nil {
		t.Fatalf("RetryMessages = %d, %v", n, err)
	}
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) {
		ms := store.messagesOf(acct, "sub-1")
		return len(ms) == 0, fmt.Sprintf("messages %+v", ms)
	})
	if reqs := rc.requests(); len(reqs) != 4 || reqs[3].header.Get(HeaderID) != evs[1].ID {
		t.Errorf("%d requests", len(reqs))
	}
}

// TestPendingAfterRestart: messages saved before a restart are sent by
// the next engine, and a waiting one of an ordered subscription after the
// one before it.
func TestPendingAfterRestart(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	sub := subscription("sub-1", rc.srv.URL)
	sub.Ordered = true
	evs := []*herald.Event{apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`)}
	for _, e := range evs {
		e.EventLifecycleID = "L"
	}
	store.appendEvents(acct, evs...)
	sub.Cursor = evs[2].Seq
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	k := subKey{acct, "sub-1"}
	store.messages[k] = map[int64]*herald.Message{
		1: {AccountID: acct, SubscriptionID: "sub-1", EventID: evs[0].ID, Seq: 1, OrderKey: "lifecycle:L", State: herald.MessageRetrying, Attempts: 2, NextAttemptAt: time.Now().Add(-time.Second)},
		2: {AccountID: acct, SubscriptionID: "sub-1", EventID: evs[1].ID, Seq: 2, OrderKey: "lifecycle:L", State: herald.MessageWaiting},
	}
	startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(store.messagesOf(acct, "sub-1")) == 0, fmt.Sprintf("%d requests", len(rc.requests()))
	})
	reqs := rc.requests()
	if len(reqs) != 2 || reqs[0].event(t).Seq != 1 || reqs[1].event(t).Seq != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	if atts := store.attemptsOf(acct, "sub-1"); atts[0].Number != 3 || atts[1].Number != 1 {
		t.Errorf("attempt numbers %d, %d; want 3, 1", atts[0].Number, atts[1].Number)
	}
}

// TestGoneDisables: a 410 disables the subscription, which stops.
func TestGoneDisables(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, func(received, int, http.Header) (int, string) { return http.StatusGone, "" })
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := store.subscription(acct, "sub-1")
		return s.State == herald.SubscriptionDisabled, "state " + s.State
	})
	if s := store.subscription(acct, "sub-1"); s.StateReason != "endpoint answered 410 Gone" {
		t.Errorf("reason %q", s.StateReason)
	}
	atts := store.attemptsOf(acct, "sub-1")
	if len(atts) != 1 || atts[0].Outcome != herald.AttemptFinal || atts[0].StatusCode != 410 {
		t.Fatalf("attempts %+v", atts)
	}
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) { return !eng.holds("sub-1"), "still delivering" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	eng.Refresh()
	if n := len(rc.requests()); n != 1 {
		t.Errorf("%d requests after the 410", n)
	}
}

// TestDisableAfter: failing for longer than DisableAfter disables the
// subscription with the reason.
func TestDisableAfter(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, func(received, int, http.Header) (int, string) { return http.StatusBadGateway, "" })
	sub := subscription("sub-1", rc.srv.URL)
	sub.RetrySchedule = schedule(20, ms(20))
	sub.DisableAfter = ms(100)
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		s := store.subscription(acct, "sub-1")
		return s.State == herald.SubscriptionDisabled, "state " + s.State
	})
	s := store.subscription(acct, "sub-1")
	if !strings.HasPrefix(s.StateReason, "deliveries failing since ") || !strings.HasSuffix(s.StateReason, "longer than 100ms") {
		t.Errorf("reason %q", s.StateReason)
	}
	if s.FailingSince == nil {
		t.Error("failingSince not saved")
	}
	// The message stays, to be sent when the subscription is resumed.
	if ms := store.messagesOf(acct, "sub-1"); len(ms) != 1 || ms[0].State != herald.MessageRetrying {
		t.Errorf("messages %+v", ms)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRetryAfter: a 503 with Retry-After: 120 is retried 120 s later (on
// the engine's clock), not on the schedule.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	store := newMemStore()
	rc := newReceiver(t, func(_ received, n int, h http.Header) (int, string) {
		if n == 0 {
			h.Set("Retry-After", "120")
			return http.StatusServiceUnavailable, ""
		}
		return http.StatusOK, ""
	})
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{Now: clock.Now})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		ms := store.messagesOf(acct, "sub-1")
		return len(ms) == 1, fmt.Sprintf("%d messages", len(ms))
	})
	t0 := clock.Now()
	m := store.messagesOf(acct, "sub-1")[0]
	if want := t0.Add(120 * time.Second); !m.NextAttemptAt.Equal(want) || m.LastStatus != 503 {
		t.Fatalf("message %+v, want the next attempt at %s (no jitter)", m, want)
	}

	// 100 s on, the deliverer looks and sends nothing.
	clock.Add(100 * time.Second)
	dueCheck := func() int {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.dueCalls
	}
	before := dueCheck()
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) { return dueCheck() > before, "no look at due messages" })
	if n := len(rc.requests()); n != 1 {
		t.Fatalf("%d requests before Retry-After passed", n)
	}
	clock.Add(21 * time.Second)
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(store.messagesOf(acct, "sub-1")) == 0, fmt.Sprintf("%d requests", len(rc.requests()))
	})
	atts := store.attemptsOf(acct, "sub-1")
	if len(atts) != 2 || atts[1].Outcome != herald.AttemptDelivered || !atts[1].At.Equal(t0.Add(121*time.Second)) {
		t.Fatalf("attempts %+v", atts)
	}
	wh, _ := standardwebhooks.NewWebhook(store.subs[subKey{acct, "sub-1"}].secrets[0].Secret)
	for _, r := range rc.requests() {
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Error(err)
		}
	}
}

// TestOrdered: events of one lifecycle arrive in seq order although each
// first attempt fails; a later one waits while an earlier one is retried.
func TestOrdered(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	var mu sync.Mutex
	failed := map[string]bool{}
	rc := newReceiver(t, func(r received, _ int, _ http.Header) (int, string) {
		id := r.header.Get(HeaderID)
		mu.Lock()
		defer mu.Unlock()
		if !failed[id] && strings.Contains(string(r.body), `"eventLifecycleId":"L1"`) {
			failed[id] = true
			return http.StatusInternalServerError, ""
		}
		return http.StatusOK, ""
	})
	sub := subscription("sub-1", rc.srv.URL)
	sub.Ordered = true
	sub.MaxInFlight = 8
	sub.RetrySchedule = schedule(5, ms(20))
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	var evs []*herald.Event
	for i := range 12 {
		e := apiEvent("transfers", "single", fmt.Sprintf(`{"i":%d}`, i))
		e.EventLifecycleID = []string{"L1", "L2", "L3"}[i%3]
		evs = append(evs, e)
	}
	store.appendEvents(acct, evs[:6]...)
	eng.Notify(acct)
	store.appendEvents(acct, evs[6:]...)
	eng.Notify(acct)

	waitFor(t, 10*time.Second, func() (bool, string) {
		n := 0
		for _, r := range rc.requests() {
			if r.status == http.StatusOK {
				n++
			}
		}
		return n == len(evs) && len(store.messagesOf(acct, "sub-1")) == 0, fmt.Sprintf("%d of %d delivered", n, len(evs))
	})
	// Per lifecycle: requests by seq, never one for a later event before
	// the earlier one was delivered.
	lastDelivered := map[string]int64{}
	inFlightSeq := map[string]int64{}
	for _, r := range rc.requests() {
		e := r.event(t)
		if s, ok := inFlightSeq[e.EventLifecycleID]; ok && s != e.Seq {
			t.Fatalf("lifecycle %s: request for seq %d while seq %d was not delivered", e.EventLifecycleID, e.Seq, s)
		}
		if e.Seq <= lastDelivered[e.EventLifecycleID] {
			t.Fatalf("lifecycle %s: seq %d after %d was delivered", e.EventLifecycleID, e.Seq, lastDelivered[e.EventLifecycleID])
		}
		if r.status == http.StatusOK {
			lastDelivered[e.EventLifecycleID] = e.Seq
			delete(inFlightSeq, e.EventLifecycleID)
		} else {
			inFlightSeq[e.EventLifecycleID] = e.Seq
		}
	}
	for _, l := range []string{"L1", "L2", "L3"} {
		if want := evs[len(evs)-3:][map[string]int{"L1": 0, "L2": 1, "L3": 2}[l]].Seq; lastDelivered[l] != want {
			t.Errorf("lifecycle %s: last delivered %d, want %d", l, lastDelivered[l], want)
		}
	}
	if c := store.subscription(acct, "sub-1").Cursor; c != evs[len(evs)-1].Seq {
		t.Errorf("cursor %d", c)
	}
}

// TestHangingEndpointIsolated: a subscription whose endpoint hangs does
// not slow one beside it: the healthy one's events arrive as fast as
// when it is alone.
func TestHangingEndpointIsolated(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var hangMu sync.Mutex
	hanging := 0
	slow := newReceiver(t, func(received, int, http.Header) (int, string) {
		hangMu.Lock()
		hanging++
		hangMu.Unlock()
		<-release
		return http.StatusOK, ""
	})
	fast := newReceiver(t, nil)
	store := newMemStore()
	good := subscription("sub-good", fast.srv.URL)
	store.addSubscription(good, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	t.Cleanup(func() { close(release) }) // after the engine has closed

	measure := func() []time.Duration {
		sent := map[string]time.Time{}
		var ids []string
		before := len(fast.requests())
		for i := range 30 {
			e := apiEvent("transfers", "single", fmt.Sprintf(`{"i":%d}`, i))
			sent[e.ID] = time.Now()
			ids = append(ids, e.ID)
			store.appendEvents(acct, e)
			eng.Notify(acct)
			time.Sleep(3 * time.Millisecond) // an offered rate, not a wait for a result
		}
		waitFor(t, 10*time.Second, func() (bool, string) {
			n := len(fast.requests()) - before
			return n >= len(ids), fmt.Sprintf("%d of %d", n, len(ids))
		})
		var lat []time.Duration
		for _, r := range fast.requests()[before:] {
			lat = append(lat, r.at.Sub(sent[r.header.Get(HeaderID)]))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat
	}
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-good"), "not leased" })
	alone := measure()

	bad := subscription("sub-hang", slow.srv.URL)
	bad.MaxInFlight = 4
	bad.Timeout = herald.Duration(time.Minute)
	store.addSubscription(bad, secret(herald.NewSigningSecret()))
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-hang"), "not leased" })
	beside := measure()
	hangMu.Lock()
	h := hanging
	hangMu.Unlock()
	if h != 4 {
		t.Fatalf("%d requests hanging, want the window of 4", h)
	}
	p := func(l []time.Duration, q float64) time.Duration { return l[int(q*float64(len(l)-1))] }
	t.Logf("healthy latency alone p50 %s max %s; beside a hanging endpoint p50 %s max %s",
		p(alone, .5), p(alone, 1), p(beside, .5), p(beside, 1))
	if p(beside, 1) > p(alone, 1)+250*time.Millisecond {
		t.Errorf("healthy max latency %s beside a hanging endpoint, %s alone", p(beside, 1), p(alone, 1))
	}
}

// TestTemplateDelivery: the Slack template shapes the body, which is what
// is signed.
func TestTemplateDelivery(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	sub := subscription("sub-slack", rc.srv.URL)
	sub.Filter = herald.Filter{SystemEventType: "failed"}
	sub.JSONTemplate = slackTemplate
	sec := herald.NewSigningSecret()
	store.addSubscription(sub, secret(sec))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-slack"), "not leased" })
	failed, err := herald.SystemEvent{AccountID: acct, SubjectType: herald.SubjectWork, SubjectID: "work-9",
		Verb: herald.VerbFailed, At: time.Now(), Notes: "export timed out"}.Event()
	if err != nil {
		t.Fatal(err)
	}
	store.appendEvents(acct, apiEvent("work", "failed", `{}`), failed)
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(rc.requests()) == 1, "no request" })
	r := rc.requests()[0]
	want := `{"text":"Alert notification: export timed out. For more info go to: https://activate.getlytics.com/data/integrations/work/work-9?aid=acct-1"}`
	if string(r.body) != want {
		t.Errorf("body\n %s\nwant\n %s", r.body, want)
	}
	wh, _ := standardwebhooks.NewWebhook(sec)
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Error(err)
	}
	if r.header.Get(HeaderID) != failed.ID {
		t.Errorf("webhook-id %q, want %q", r.header.Get(HeaderID), failed.ID)
	}
}

// TestTemplateRuntimeErrorRecorded: a template that fails for an event
// records a failed attempt with Jsonnet's error and no request.
func TestTemplateRuntimeErrorRecorded(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	sub := subscription("sub-1", rc.srv.URL)
	sub.JSONTemplate = `{"x": event.data.missing}`
	sub.RetrySchedule = schedule(1, herald.Duration(time.Hour))
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{"present":1}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(store.attemptsOf(acct, "sub-1")) == 1, "no attempt" })
	a := store.attemptsOf(acct, "sub-1")[0]
	if a.Outcome != herald.AttemptFailed || a.StatusCode != 0 ||
		a.Error != "json_template: RUNTIME ERROR: Field does not exist: missing at line 1, column 7" {
		t.Errorf("attempt %+v", a)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

// TestPrivateTargetRefused: without AllowPrivate the engine records a
// refused connection and the receiver sees nothing.
func TestPrivateTargetRefused(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	sub := subscription("sub-1", "http://localhost:"+port+"/hook")
	sub.RetrySchedule = schedule(1, herald.Duration(time.Hour))
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{Client: NewClient(ClientOptions{})})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(store.attemptsOf(acct, "sub-1")) == 1, "no attempt" })
	a := store.attemptsOf(acct, "sub-1")[0]
	if a.Outcome != herald.AttemptFailed || !strings.Contains(a.Error, "refused to connect to") || !strings.Contains(a.Error, "loopback") {
		t.Errorf("attempt %+v", a)
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}

// TestRateLimit: 12 events at 20 per second take about half a second.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	sub := subscription("sub-1", rc.srv.URL)
	sub.RateLimit = 20
	store.addSubscription(sub, secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	for range 12 {
		store.appendEvents(acct, apiEvent("a", "b", `{}`))
	}
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(rc.requests()) == 12, fmt.Sprintf("%d requests", len(rc.requests())) })
	reqs := rc.requests()
	// A burst of 2, then 10 at 50 ms each.
	if span := reqs[11].at.Sub(reqs[0].at); span < 400*time.Millisecond {
		t.Errorf("12 requests in %s at 20/s", span)
	}
}

// TestResumeAfterRestart: a second engine goes on from the cursor the
// first saved; nothing is sent twice or lost.
func TestResumeAfterRestart(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	first, err := New(Options{Store: store, Owner: "node-a", AllowPrivate: true, LeaseTTL: 300 * time.Millisecond, PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	first.Start()
	waitFor(t, 5*time.Second, func() (bool, string) { return first.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`))
	first.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(rc.requests()) == 2, "first events not sent" })
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if c := store.subscription(acct, "sub-1").Cursor; c != 2 {
		t.Fatalf("cursor %d after close, want 2", c)
	}
	// Stored while no engine ran.
	store.appendEvents(acct, apiEvent("a", "b", `{}`), apiEvent("a", "b", `{}`))
	second := startEngine(t, store, Options{Owner: "node-b"})
	waitFor(t, 5*time.Second, func() (bool, string) { return len(rc.requests()) == 4, fmt.Sprintf("%d requests", len(rc.requests())) })
	seen := map[int64]bool{}
	for _, r := range rc.requests() {
		s := r.event(t).Seq
		if seen[s] {
			t.Errorf("seq %d sent twice", s)
		}
		seen[s] = true
	}
	_ = second
}

// TestLeaseLost: when another node holds the lease, saving fails with
// ECONFLICT and the deliverer stops.
func TestLeaseLost(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{Owner: "node-a", LeaseTTL: time.Hour})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.mu.Lock()
	r := store.subs[subKey{acct, "sub-1"}]
	r.leaseOwner, r.leaseUntil = "node-b", time.Now().Add(time.Hour)
	store.mu.Unlock()
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		eng.mu.RLock()
		d := eng.current[subKey{acct, "sub-1"}]
		eng.mu.RUnlock()
		return d == nil || d.exited(), "still delivering"
	})
	if n := len(store.attemptsOf(acct, "sub-1")); n != 0 {
		t.Errorf("%d attempts saved without the lease", n)
	}
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) { return !eng.holds("sub-1"), "leased again" })
}

// BenchmarkDeliver measures signed deliveries per second to a local
// receiver, with the in-memory store (the engine's own cost; the SQL
// stores' commits come on top, see herald bench delivery).
func BenchmarkDeliver(b *testing.B) {
	for _, window := range []int{16, 64} {
		b.Run(fmt.Sprintf("inflight=%d", window), func(b *testing.B) {
			store := newMemStore()
			var got sync.WaitGroup
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				got.Done()
			}))
			defer srv.Close()
			sub := subscription("sub-1", srv.URL)
			sub.MaxInFlight = window
			store.addSubscription(sub, secret(herald.NewSigningSecret()))
			e, err := New(Options{Store: store, AllowPrivate: true, PollInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			e.Start()
			defer e.Close()
			evs := make([]*herald.Event, b.N)
			for i := range evs {
				evs[i] = apiEvent("transfers", "single", `{"amount":"12.50","currency":"EUR","account":"NL91ABNA0417164300"}`)
			}
			store.appendEvents(acct, evs...)
			got.Add(b.N)
			b.ResetTimer()
			e.Refresh()
			e.Notify(acct)
			got.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// TestStoreErrorsRetried: while saving fails, results wait in memory and
// nothing more is sent; once the store is back they are saved once.
func TestStoreErrorsRetried(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	rc := newReceiver(t, nil)
	store.addSubscription(subscription("sub-1", rc.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.mu.Lock()
	store.saveErr = fmt.Errorf("disk I/O error")
	store.mu.Unlock()
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		return testutil.ToFloat64(eng.metrics.storeErrors) >= 1, "no store error"
	})
	store.mu.Lock()
	store.saveErr = nil
	store.mu.Unlock()
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		c := store.subscription(acct, "sub-1").Cursor
		return c == 2, fmt.Sprintf("cursor %d", c)
	})
	if n, m := len(store.attemptsOf(acct, "sub-1")), len(rc.requests()); n != 2 || m != 2 {
		t.Errorf("%d attempts saved for %d requests, want 2 and 2", n, m)
	}
}

// TestSettingsChange: a new URL applies to the next request; switching to
// ordered mode restarts the deliverer where the old one stopped.
func TestSettingsChange(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	first, second := newReceiver(t, nil), newReceiver(t, nil)
	store.addSubscription(subscription("sub-1", first.srv.URL), secret(herald.NewSigningSecret()))
	eng := startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) { return eng.holds("sub-1"), "not leased" })
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return store.subscription(acct, "sub-1").Cursor == 1, "first not saved" })

	store.updateSubscription(acct, "sub-1", func(s *herald.Subscription) { s.URL = second.srv.URL })
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) {
		eng.mu.RLock()
		defer eng.mu.RUnlock()
		return eng.current[subKey{acct, "sub-1"}].cfg.Load().URL == second.srv.URL, "URL not taken on"
	})
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) { return len(second.requests()) == 1, "not sent to the new URL" })

	eng.mu.RLock()
	before := eng.current[subKey{acct, "sub-1"}]
	eng.mu.RUnlock()
	store.updateSubscription(acct, "sub-1", func(s *herald.Subscription) { s.Ordered = true })
	eng.Refresh()
	waitFor(t, 5*time.Second, func() (bool, string) {
		eng.mu.RLock()
		defer eng.mu.RUnlock()
		d := eng.current[subKey{acct, "sub-1"}]
		return d != before && d.ordered, "not restarted"
	})
	store.appendEvents(acct, apiEvent("a", "b", `{}`))
	eng.Notify(acct)
	waitFor(t, 5*time.Second, func() (bool, string) {
		return len(second.requests()) == 2, fmt.Sprintf("%d requests", len(second.requests()))
	})
	if n := len(first.requests()); n != 1 {
		t.Errorf("the old URL got %d requests", n)
	}
	for i, r := range second.requests() {
		if s := r.event(t).Seq; s != int64(i+2) {
			t.Errorf("request %d for seq %d", i, s)
		}
	}
}

// TestEnginePrunesOldAttempts: attempts older than the retention go at
// start (and every minute after); newer ones stay.
func TestEnginePrunesOldAttempts(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	now := time.Now()
	k := subKey{"acme", "sub_1"}
	store.mu.Lock()
	store.attempts[k] = []*herald.Attempt{
		{ID: 1, SubscriptionID: "sub_1", At: now.Add(-40 * 24 * time.Hour)},
		{ID: 2, SubscriptionID: "sub_1", At: now.Add(-31 * 24 * time.Hour)},
		{ID: 3, SubscriptionID: "sub_1", At: now.Add(-time.Hour)},
	}
	store.mu.Unlock()
	startEngine(t, store, Options{})
	waitFor(t, 5*time.Second, func() (bool, string) {
		left := store.attemptsOf("acme", "sub_1")
		return len(left) == 1 && left[0].ID == 3, fmt.Sprintf("%d attempts left", len(left))
	})
}
