package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// newSubscription is the answer of POST /v1/subscriptions.
type newSubscription struct {
	herald.Subscription
	Secret string `json:"secret"`
}

// subscribe creates a subscription of account acme to every
// authentication event, with one failed and one delivered attempt and one
// dead and one retrying message, and returns its id.
func subscribe(t *testing.T, e *env) string {
	t.Helper()
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com/hook","filter":{"categories":["authentication"]}}`).
		wantStatus(t, 201).json(t, &sub)
	e.store.addAttempt(herald.Attempt{AccountID: "acme", SubscriptionID: sub.ID, EventID: "evt-1", Seq: 1, Number: 1, At: testNow,
		Outcome: herald.AttemptFailed, StatusCode: 503, LatencyMicros: 1500, Error: "503 Service Unavailable", Response: "busy"})
	e.store.addAttempt(herald.Attempt{AccountID: "acme", SubscriptionID: sub.ID, EventID: "evt-2", Seq: 2, Number: 1, At: testNow,
		Outcome: herald.AttemptDelivered, StatusCode: 204, LatencyMicros: 800})
	e.store.addMessage(herald.Message{AccountID: "acme", SubscriptionID: sub.ID, EventID: "evt-1", Seq: 1, State: herald.MessageDead,
		Attempts: 8, LastStatus: 503, LastError: "503 Service Unavailable", CreatedAt: testNow, UpdatedAt: testNow})
	e.store.addMessage(herald.Message{AccountID: "acme", SubscriptionID: sub.ID, EventID: "evt-3", Seq: 3, State: herald.MessageRetrying,
		Attempts: 1, NextAttemptAt: testNow.Add(time.Minute), CreatedAt: testNow, UpdatedAt: testNow})
	return sub.ID
}

// firstSubscription returns the id of the account's first subscription,
// "sub_none" if it has none.
func (e *env) firstSubscription(accountID string) string {
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	for _, ref := range e.store.subs.order {
		if _, ok := e.store.subs.byRef[ref]; ok && ref.AccountID == accountID {
			return ref.ID
		}
	}
	return "sub_none"
}

func TestCreateSubscription(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sendLogin(t, e, "L-1", "cust-1", "attempted", "succeeded")
	e.store.mu.Lock()
	lastSeq := e.store.seq["acme"]
	e.store.mu.Unlock()
	body := `{"name":"core banking","url":"https://bank.example/hooks/herald","ordered":true,"rateLimit":50,
		"filter":{"categories":["authentication"],"types":["log*"],"statuses":["succeeded"],"origin":"api"},
		"headers":{"X-Partner":"p-1"},"json_template":"{id: event.id}","retrySchedule":["10s","1h"],"timeout":"5s","disableAfter":"48h"}`
	r := e.do("POST", "/v1/subscriptions", e.admin, body).wantStatus(t, 201)
	var got newSubscription
	r.json(t, &got)
	if !strings.HasPrefix(got.Secret, herald.SecretPrefix) || len(got.Secret) < 40 {
		t.Errorf("secret %q", got.Secret)
	}
	if loc := r.header.Get("Location"); loc != "/v1/subscriptions/"+got.ID || !strings.HasPrefix(got.ID, "sub_") {
		t.Errorf("Location %q for id %q", loc, got.ID)
	}
	want := herald.Subscription{
		ID: got.ID, Name: "core banking", URL: "https://bank.example/hooks/herald", Ordered: true, RateLimit: 50,
		Filter:  herald.Filter{Categories: []string{"authentication"}, Types: []string{"log*"}, Statuses: []string{"succeeded"}, Origin: herald.OriginAPI},
		Headers: map[string]string{"X-Partner": "p-1"}, JSONTemplate: "{id: event.id}",
		MaxInFlight:   herald.DefaultMaxInFlight,
		RetrySchedule: []herald.Duration{herald.Duration(10 * time.Second), herald.Duration(time.Hour)},
		Timeout:       herald.Duration(5 * time.Second), DisableAfter: herald.Duration(48 * time.Hour),
		State:     herald.SubscriptionActive,
		Cursor:    lastSeq, // what was stored before is not delivered
		CreatedAt: testNow.Truncate(time.Microsecond), UpdatedAt: testNow.Truncate(time.Microsecond),
	}
	if !reflect.DeepEqual(got.Subscription, want) {
		t.Errorf("created\n got %+v\nwant %+v", got.Subscription, want)
	}

	// Reading it back never shows the secret.
	for _, path := range []string{"/v1/subscriptions", "/v1/subscriptions/" + got.ID} {
		r := e.do("GET", path, e.admin, "").wantStatus(t, 200)
		if strings.Contains(string(r.body), got.Secret) || strings.Contains(string(r.body), `"secret"`) {
			t.Errorf("GET %s shows the secret: %s", path, r.body)
		}
	}
	var list struct{ Subscriptions []herald.Subscription }
	e.do("GET", "/v1/subscriptions", e.admin, "").wantStatus(t, 200).json(t, &list)
	if len(list.Subscriptions) != 1 || !reflect.DeepEqual(list.Subscriptions[0], want) {
		t.Errorf("listed %+v", list.Subscriptions)
	}
	// Another account sees none of it.
	e.do("GET", "/v1/subscriptions/"+got.ID, e.other, "").wantStatus(t, 404)

	// Defaults: a URL alone.
	var bare newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"http://receiver.internal:8080/in"}`).wantStatus(t, 201).json(t, &bare)
	if bare.MaxInFlight != herald.DefaultMaxInFlight || !reflect.DeepEqual(bare.RetrySchedule, herald.DefaultRetrySchedule()) ||
		bare.Timeout != herald.Duration(herald.DefaultDeliveryTimeout) || bare.DisableAfter != herald.Duration(herald.DefaultDisableAfter) ||
		bare.Ordered || bare.State != herald.SubscriptionActive || !reflect.DeepEqual(bare.Filter, herald.Filter{}) {
		t.Errorf("defaults %+v", bare.Subscription)
	}
	if bare.Secret == got.Secret {
		t.Error("two subscriptions got the same secret")
	}

	// An empty retry schedule stays empty: every failure is final.
	var noRetry newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com","retrySchedule":[]}`).wantStatus(t, 201).json(t, &noRetry)
	if noRetry.RetrySchedule == nil || len(noRetry.RetrySchedule) != 0 {
		t.Errorf("retrySchedule %v, want []", noRetry.RetrySchedule)
	}
}

// TestCreateSubscriptionAudit checks that creating writes its system
// event, naming the key, without the secret.
func TestCreateSubscriptionAudit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com/hook"}`).wantStatus(t, 201).json(t, &sub)
	r := e.do("GET", "/v1/audit?subjectType=subscription&verb=created", e.read, "").wantStatus(t, 200)
	var page struct{ Events []herald.Event }
	r.json(t, &page)
	if len(page.Events) != 1 || page.Events[0].PrimaryID != sub.ID || page.Events[0].AgentID != "key_admin" {
		t.Fatalf("audit %s", r.body)
	}
	if strings.Contains(string(r.body), sub.Secret) {
		t.Errorf("the system event holds the secret: %s", r.body)
	}
}

// lyticsExample reads one of the Lytics documentation's job configs, kept
// under testdata as the documentation prints them.
func lyticsExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "lytics", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCreateLyticsExamples posts the Lytics documentation's webhook job
// configs as they are, their placeholder URL replaced with a real one.
func TestCreateLyticsExamples(t *testing.T) {
	t.Parallel()
	verbs := []string{"updated", "created", "failed"}
	slackTemplate := `local note = if std.objectHas(event.data, "notes") then event.data.notes else "A work failed"; {"text": "Alert notification: " + note + ". For more info go to: https://activate.getlytics.com/data/integrations/work/%s?aid=%s" % [event.data.subject_id, event.data.aid] }`
	header := map[string]string{"custom-header": "header-value"}
	cases := []struct {
		name        string
		placeholder string
		filter      herald.Filter
		headers     map[string]string
		template    string
	}{
		{"basic", "YOUR_WEBHOOK_ENDPOINT", herald.Filter{SystemEventMultipleTypes: verbs, Origin: herald.OriginSystem}, header, ""},
		{"slack", "YOUR_SLACK_WEBHOOK_URL", herald.Filter{SystemEventType: "failed", Origin: herald.OriginSystem}, nil, slackTemplate},
		{"sources-by-id", "YOUR_WEBHOOK_ENDPOINT", herald.Filter{SystemEventMultipleTypes: verbs, Origin: herald.OriginSystem,
			SystemEventSources: map[string][]string{"work": {"work-id-1", "work-id-2"}}}, header, ""},
		{"sources-all-works", "YOUR_WEBHOOK_ENDPOINT", herald.Filter{SystemEventMultipleTypes: verbs, Origin: herald.OriginSystem,
			SystemEventSources: map[string][]string{"work": {}}}, header, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var compiled []string
			e := newEnv(t, func(cfg *Config) {
				cfg.CompileTemplate = func(src string) error { compiled = append(compiled, src); return nil }
			})
			doc := lyticsExample(t, c.name)

			// As printed, the URL is a placeholder: refused, where the
			// job body has it.
			p := e.do("POST", "/v1/subscriptions", e.admin, doc).wantStatus(t, 400).problem(t)
			if !slices.Equal(pointers(p), []string{"/config/webhook_url"}) {
				t.Errorf("placeholder URL: errors %+v", p.Errors)
			}

			body := strings.Replace(doc, c.placeholder, "https://hooks.example.com/T000/B000/XXXX", 1)
			var got newSubscription
			e.do("POST", "/v1/subscriptions", e.admin, body).wantStatus(t, 201).json(t, &got)
			if got.URL != "https://hooks.example.com/T000/B000/XXXX" || !reflect.DeepEqual(got.Filter, c.filter) ||
				!reflect.DeepEqual(got.Headers, c.headers) || got.JSONTemplate != c.template || !strings.HasPrefix(got.Secret, "whsec_") {
				t.Errorf("made %+v", got.Subscription)
			}
			if c.template != "" && (len(compiled) == 0 || compiled[len(compiled)-1] != c.template) {
				t.Errorf("compiled %q, want the template", compiled)
			}
			// The filter is one the audit log takes too: it selects
			// system events by the same keys.
			if err := got.Filter.Validate(""); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSubscriptionInvalid(t *testing.T) {
	t.Parallel()
	badTemplate := &herald.Error{Code: herald.EINVALID, Message: "/json_template: 1:7-8 Unexpected end of file",
		Fields: []herald.FieldError{{Pointer: "/json_template", Detail: "1:7-8 Unexpected end of file"}}}
	compile := func(src string) error {
		switch src {
		case "{text:":
			return badTemplate
		case "plain error":
			return errors.New("RUNTIME ERROR: boom")
		}
		return nil
	}
	lytics := func(config string) string {
		return `{"config":` + config + `,"workflow":"webhook_system_events"}`
	}
	cases := []struct {
		name string
		path string
		body string
		want []string
	}{
		{"not an object", "", `[]`, []string{""}},
		{"null", "", `null`, []string{""}},
		{"no url", "", `{}`, []string{"/url"}},
		{"bad url", "", `{"url":"ftp://example.com/x"}`, []string{"/url"}},
		{"url with user", "", `{"url":"https://user:pw@example.com"}`, []string{"/url"}},
		{"url not a string", "", `{"url":5}`, []string{"/url"}},
		{"unknown fields", "", `{"url":"https://example.com","secret":"whsec_x","events":["a"]}`, []string{"/events", "/secret"}},
		{"set by Herald", "", `{"url":"https://example.com","id":"sub_mine","cursor":5}`, []string{"/cursor", "/id"}},
		{"filter not an object", "", `{"url":"https://example.com","filter":"all"}`, []string{"/filter"}},
		{"filter unknown keys", "", `{"url":"https://example.com","filter":{"system_event_typ":"failed","category":"x"}}`,
			[]string{"/filter/category", "/filter/system_event_typ"}},
		{"filter bad values", "", `{"url":"https://example.com","filter":{"system_event_type":"no such!","origin":"both","types":[""]}}`,
			[]string{"/filter/system_event_type", "/filter/types/0", "/filter/origin"}},
		{"filter sources", "", `{"url":"https://example.com","filter":{"system_event_sources":{"work":[""]}}}`,
			[]string{"/filter/system_event_sources/work/0"}},
		{"filter wrong type", "", `{"url":"https://example.com","filter":{"categories":"transfers"}}`, []string{"/filter/categories"}},
		{"headers", "", `{"url":"https://example.com","headers":{"webhook-signature":"x","Bad Name":"y","X-Num":5}}`,
			[]string{"/headers/Bad Name", "/headers/webhook-signature", "/headers/X-Num"}},
		{"limits", "", `{"url":"https://example.com","maxInFlight":1000,"rateLimit":-1}`, []string{"/rateLimit", "/maxInFlight"}},
		{"durations", "", `{"url":"https://example.com","timeout":"forever","disableAfter":5,"retrySchedule":["1s","soon","1ms"]}`,
			[]string{"/retrySchedule/1", "/timeout", "/disableAfter", "/retrySchedule/2"}},
		{"url not a string and bad header", "", `{"url":5,"headers":{"Host":"x"}}`, []string{"/url", "/headers/Host"}},
		{"duration out of range", "", `{"url":"https://example.com","timeout":"1h"}`, []string{"/timeout"}},
		{"bad template", "", `{"url":"https://example.com","json_template":"{text:"}`, []string{"/json_template"}},
		{"bad template and url", "", `{"url":"x","json_template":"{text:"}`, []string{"/url", "/json_template"}},
		{"template plain error", "", `{"url":"https://example.com","json_template":"plain error"}`, []string{"/json_template"}},
		{"trailing data", "", `{"url":"https://example.com"} {}`, []string{""}},
		{"bad from", "?from=yesterday", `{"url":"https://example.com"}`, []string{"?from"}},
		{"negative from", "?from=-5", `{"url":"https://example.com"}`, []string{"?from"}},

		{"lytics wrong workflow", "", `{"config":{"webhook_url":"https://example.com"},"workflow":"email_alerts"}`, []string{"/workflow"}},
		{"lytics no workflow", "", `{"config":{"webhook_url":"https://example.com"}}`, []string{"/workflow"}},
		{"lytics no config", "", `{"workflow":"webhook_system_events"}`, []string{"/config"}},
		{"lytics extra member", "", `{"config":{"webhook_url":"https://example.com"},"workflow":"webhook_system_events","url":"https://x"}`, []string{"/url"}},
		{"lytics unknown config key", "", lytics(`{"webhook_url":"https://example.com","categories":["x"]}`), []string{"/config/categories"}},
		{"lytics bad verb", "", lytics(`{"webhook_url":"https://example.com","system_event_multiple_types":["ok","no way"]}`),
			[]string{"/config/system_event_multiple_types/1"}},
		{"lytics bad source", "", lytics(`{"webhook_url":"https://example.com","system_event_sources":{"work!":[]}}`),
			[]string{"/config/system_event_sources/work!"}},
		{"lytics bad header", "", lytics(`{"webhook_url":"https://example.com","headers":{"content-type":"text/plain"}}`),
			[]string{"/config/headers/content-type"}},
		{"lytics bad template", "", lytics(`{"webhook_url":"https://example.com","json_template":"{text:"}`), []string{"/config/json_template"}},
		{"lytics wrong type", "", lytics(`{"webhook_url":["https://example.com"]}`), []string{"/config/webhook_url"}},
	}
	e := newEnv(t, func(cfg *Config) { cfg.CompileTemplate = compile })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", "/v1/subscriptions"+c.path, e.admin, c.body).wantStatus(t, 400).problem(t)
			// Sorted: the rules name headers in map order.
			if got := sorted(pointers(p)); !slices.Equal(got, sorted(c.want)) {
				t.Errorf("errors %+v, want pointers %q", p.Errors, c.want)
			}
		})
	}
	// The compiler's error reaches the client as it is: message,
	// position and pointer.
	p := e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com","json_template":"{text:"}`).wantStatus(t, 400).problem(t)
	if p.Detail != badTemplate.Message || !reflect.DeepEqual(p.Errors, badTemplate.Fields) {
		t.Errorf("bad template answered %+v", p)
	}
	if n := len(e.store.subs.byRef); n != 0 {
		t.Errorf("%d subscriptions stored by invalid requests", n)
	}
}

// TestCreateFrom checks ?from=: a seq delivers the events from that seq
// on, a time from the first event stored that occurred at or after it.
func TestCreateFrom(t *testing.T) {
	t.Parallel()
	// given records the cursor httpapi hands the store.
	var given int64
	e := newEnv(t, func(cfg *Config) {
		subs := cfg.Subscriptions.(*mock.SubscriptionService)
		create := subs.CreateSubscriptionFn
		subs.CreateSubscriptionFn = func(ctx context.Context, s *herald.Subscription, secret string) error {
			given = s.Cursor
			return create(ctx, s, secret)
		}
	})
	// Three events occurring at, at+1m and at+2m, sent in that order.
	at := testNow.Truncate(time.Second)
	var seqs []int64
	for i := range 3 {
		var res ingestResult
		body := event(map[string]any{"category": "transfers", "type": "transferSent", "occurredAt": at.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)})
		e.do("POST", "/v1/events", e.ingest, body).wantStatus(t, 201).json(t, &res)
		seqs = append(seqs, res.Seq)
	}
	if !slices.Equal(seqs, []int64{1, 2, 3}) {
		t.Fatalf("seqs %v, want 1, 2, 3", seqs)
	}
	// The store takes a cursor of 0 as "from now on": its last seq, which
	// grows with each creation's system event. A replay of the whole log
	// asks for a cursor before seq 1, which it stores as 0.
	cases := []struct {
		from  string
		given int64
	}{
		{"", 0},                // from now on
		{"3", 2},               // seq 3 and later
		{"2", 1},               // seq 2 and later
		{"1", replayFromStart}, // everything
		{"0", replayFromStart}, // likewise
		{"99", 98},             // from seq 99, once stored
		{url.QueryEscape(at.Add(time.Minute).Format(time.RFC3339)), 1},              // the second event on
		{url.QueryEscape(at.Add(30 * time.Second).Format(time.RFC3339Nano)), 1},     // likewise
		{url.QueryEscape(at.Add(-time.Hour).Format(time.RFC3339)), replayFromStart}, // everything
		{url.QueryEscape(at.Add(time.Hour).Format(time.RFC3339)), 0},                // none that late: from now on
	}
	for _, c := range cases {
		path := "/v1/subscriptions"
		if c.from != "" {
			path += "?from=" + c.from
		}
		e.store.mu.Lock()
		stored := map[int64]int64{0: e.store.seq["acme"], replayFromStart: 0}
		e.store.mu.Unlock()
		want, ok := stored[c.given]
		if !ok {
			want = c.given
		}
		var got newSubscription
		e.do("POST", path, e.admin, `{"url":"https://example.com"}`).wantStatus(t, 201).json(t, &got)
		if given != c.given || got.Cursor != want {
			t.Errorf("from=%s: gave the store cursor %d, want %d; answered cursor %d, want %d", c.from, given, c.given, got.Cursor, want)
		}
	}
}

func TestSubscriptionSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com"}`).wantStatus(t, 201).json(t, &sub)
	base := "/v1/subscriptions/" + sub.ID

	// Only admin keys see or rotate secrets.
	for _, key := range []string{e.read, e.ingest} {
		e.do("GET", base+"/secret", key, "").wantStatus(t, 403)
		e.do("POST", base+"/secret/rotate", key, "").wantStatus(t, 403)
	}
	e.do("GET", base+"/secret", e.other, "").wantStatus(t, 404)
	e.do("POST", base+"/secret/rotate", e.other, "").wantStatus(t, 404)

	var secrets struct{ Secrets []herald.SigningSecret }
	e.do("GET", base+"/secret", e.admin, "").wantStatus(t, 200).json(t, &secrets)
	if len(secrets.Secrets) != 1 || secrets.Secrets[0].Secret != sub.Secret || secrets.Secrets[0].ExpiresAt != nil {
		t.Fatalf("secrets %+v", secrets.Secrets)
	}

	// Rotating keeps the old secret signing for the overlap, 24h by
	// default.
	e.do("POST", base+"/secret/rotate", e.admin, "").wantStatus(t, 200).json(t, &secrets)
	if len(secrets.Secrets) != 2 || secrets.Secrets[1].Secret != sub.Secret || secrets.Secrets[0].Secret == sub.Secret ||
		!strings.HasPrefix(secrets.Secrets[0].Secret, "whsec_") || secrets.Secrets[0].ExpiresAt != nil ||
		secrets.Secrets[1].ExpiresAt == nil || !secrets.Secrets[1].ExpiresAt.Equal(testNow.Truncate(time.Microsecond).Add(herald.DefaultSecretOverlap)) {
		t.Fatalf("after a rotation: %+v", secrets.Secrets)
	}
	second := secrets.Secrets[0].Secret

	// overlap=0s: the one replaced stops signing at once; the first
	// still signs until its own expiry.
	e.do("POST", base+"/secret/rotate?overlap=0s", e.admin, "").wantStatus(t, 200).json(t, &secrets)
	if len(secrets.Secrets) != 2 || secrets.Secrets[1].Secret != sub.Secret || slices.ContainsFunc(secrets.Secrets, func(s herald.SigningSecret) bool { return s.Secret == second }) {
		t.Errorf("after a rotation without overlap: %+v", secrets.Secrets)
	}
	e.advance(herald.DefaultSecretOverlap)
	e.do("GET", base+"/secret", e.admin, "").wantStatus(t, 200).json(t, &secrets)
	if len(secrets.Secrets) != 1 || secrets.Secrets[0].ExpiresAt != nil {
		t.Errorf("once the overlap ran out: %+v", secrets.Secrets)
	}

	for _, bad := range []string{"forever", "-1h", "721h", "1"} {
		p := e.do("POST", base+"/secret/rotate?overlap="+bad, e.admin, "").wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{"?overlap"}) {
			t.Errorf("overlap=%s: %+v", bad, p.Errors)
		}
	}
	e.do("POST", "/v1/subscriptions/sub_nope/secret/rotate", e.admin, "").wantStatus(t, 404)
}

func TestReplaceSubscription(t *testing.T) {
	t.Parallel()
	var compiled []string
	e := newEnv(t, func(cfg *Config) {
		cfg.CompileTemplate = func(src string) error { compiled = append(compiled, src); return nil }
	})
	id := subscribe(t, e)
	e.do("POST", "/v1/subscriptions/"+id+"/pause", e.admin, `{"reason":"receiver moves"}`).wantStatus(t, 200)
	e.advance(time.Hour)

	// What GET answers can be changed and sent back as it is.
	var sub map[string]any
	e.do("GET", "/v1/subscriptions/"+id, e.admin, "").wantStatus(t, 200).json(t, &sub)
	sub["url"] = "https://new.example.com/hook"
	sub["json_template"] = "{id: event.id}"
	sub["cursor"] = 999 // ignored
	b, _ := json.Marshal(sub)
	var got herald.Subscription
	e.do("PUT", "/v1/subscriptions/"+id, e.admin, string(b)).wantStatus(t, 200).json(t, &got)
	if got.URL != "https://new.example.com/hook" || got.JSONTemplate != "{id: event.id}" || got.State != herald.SubscriptionPaused ||
		got.StateReason != "receiver moves" || got.Cursor != 0 || !got.CreatedAt.Equal(testNow.Truncate(time.Microsecond)) ||
		!got.UpdatedAt.Equal(testNow.Add(time.Hour).Truncate(time.Microsecond)) ||
		!reflect.DeepEqual(got.Filter, herald.Filter{Categories: []string{"authentication"}}) {
		t.Errorf("replaced %+v", got)
	}
	if !slices.Equal(compiled, []string{"{id: event.id}"}) {
		t.Errorf("compiled %q", compiled)
	}

	// A member left out takes its default.
	got = herald.Subscription{}
	e.do("PUT", "/v1/subscriptions/"+id, e.admin, `{"url":"https://new.example.com/hook"}`).wantStatus(t, 200).json(t, &got)
	if !reflect.DeepEqual(got.Filter, herald.Filter{}) || got.JSONTemplate != "" || got.MaxInFlight != herald.DefaultMaxInFlight {
		t.Errorf("replaced with a URL alone: %+v", got)
	}

	p := e.do("PUT", "/v1/subscriptions/"+id, e.admin, `{"id":"sub_other","url":"https://example.com"}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/id"}) {
		t.Errorf("id of another: %+v", p.Errors)
	}
	p = e.do("PUT", "/v1/subscriptions/"+id, e.admin, `{"url":"https://example.com","secret":"whsec_x"}`).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/secret"}) {
		t.Errorf("a secret: %+v", p.Errors)
	}
	e.do("PUT", "/v1/subscriptions/"+id, e.other, `{"url":"https://example.com"}`).wantStatus(t, 404)

	// The Lytics shape replaces too.
	body := strings.Replace(lyticsExample(t, "basic"), "YOUR_WEBHOOK_ENDPOINT", "https://lytics.example.com", 1)
	got = herald.Subscription{}
	e.do("PUT", "/v1/subscriptions/"+id, e.admin, body).wantStatus(t, 200).json(t, &got)
	if got.URL != "https://lytics.example.com" || got.Filter.Origin != herald.OriginSystem {
		t.Errorf("replaced by a Lytics job: %+v", got)
	}
}

func TestPauseResumeDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := subscribe(t, e)
	base := "/v1/subscriptions/" + id
	var got herald.Subscription
	e.do("POST", base+"/pause", e.admin, `{"reason":"maintenance"}`).wantStatus(t, 200).json(t, &got)
	if got.State != herald.SubscriptionPaused || got.StateReason != "maintenance" {
		t.Errorf("paused %+v", got)
	}
	got = herald.Subscription{}
	audits := func() int {
		var page struct{ Events []herald.Event }
		e.do("GET", "/v1/audit?subjectType=subscription&limit=1000", e.read, "").wantStatus(t, 200).json(t, &page)
		return len(page.Events)
	}
	before := audits()
	e.do("POST", base+"/pause", e.admin, `{"reason":"maintenance"}`).wantStatus(t, 200)
	if audits() != before {
		t.Error("pausing a paused subscription wrote a system event")
	}
	e.do("POST", base+"/resume", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.SubscriptionActive || got.StateReason != "" {
		t.Errorf("resumed %+v", got)
	}

	// A disabled one resumes too.
	e.store.mu.Lock()
	e.store.subs.byRef[herald.Ref{AccountID: "acme", ID: id}].State = herald.SubscriptionDisabled
	e.store.mu.Unlock()
	got = herald.Subscription{}
	e.do("POST", base+"/resume", e.admin, "").wantStatus(t, 200).json(t, &got)
	if got.State != herald.SubscriptionActive {
		t.Errorf("resumed from disabled: %+v", got)
	}

	for body, want := range map[string]string{
		`{"reason":"` + strings.Repeat("x", 201) + `"}`: "/reason",
		`{"reason":"a"} {}`:                             "",
		`{"why":"a"}`:                                   "/why",
		`"maintenance"`:                                 "",
	} {
		p := e.do("POST", base+"/pause", e.admin, body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{want}) {
			t.Errorf("pause with %s: %+v", body, p.Errors)
		}
	}
	e.do("POST", base+"/pause", e.read, "").wantStatus(t, 403)
	e.do("POST", base+"/pause", e.other, "").wantStatus(t, 404)

	e.do("DELETE", base, e.other, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 204)
	e.do("GET", base, e.admin, "").wantStatus(t, 404)
	e.do("GET", base+"/attempts", e.read, "").wantStatus(t, 404)
	e.do("DELETE", base, e.admin, "").wantStatus(t, 404)
}

func TestRetryMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com"}`).wantStatus(t, 201).json(t, &sub)
	base := "/v1/subscriptions/" + sub.ID
	deadAll := func() {
		e.store.mu.Lock()
		defer e.store.mu.Unlock()
		e.store.subs.messages = map[herald.Ref][]*herald.Message{}
		for i := 1; i <= 4; i++ {
			ref := herald.Ref{AccountID: "acme", ID: sub.ID}
			at := testNow.Add(time.Duration(i) * time.Hour)
			e.store.subs.messages[ref] = append(e.store.subs.messages[ref], &herald.Message{AccountID: "acme", SubscriptionID: sub.ID,
				EventID: fmt.Sprintf("evt-%d", i), Seq: int64(i), State: herald.MessageDead, Attempts: 8, CreatedAt: at, UpdatedAt: at})
		}
	}
	cases := []struct {
		body string
		want int
	}{
		{``, 4},
		{`{}`, 4},
		{`{"eventIds":["evt-1","evt-3","evt-9"]}`, 2},
		{`{"after":"` + testNow.Add(2*time.Hour).Format(time.RFC3339) + `"}`, 3},
		{`{"after":"` + testNow.Add(2*time.Hour).Format(time.RFC3339) + `","before":"` + testNow.Add(4*time.Hour).Format(time.RFC3339) + `"}`, 2},
		{`{"eventIds":["evt-1","evt-3"],"before":"` + testNow.Add(2*time.Hour).Format(time.RFC3339) + `"}`, 1},
	}
	for _, c := range cases {
		deadAll()
		var res struct{ Retried *int }
		e.do("POST", base+"/retry", e.admin, c.body).wantStatus(t, 200).json(t, &res)
		if res.Retried == nil || *res.Retried != c.want {
			t.Errorf("retry %s: retried %v, want %d", c.body, res.Retried, c.want)
		}
		var page struct{ Messages []herald.Message }
		e.do("GET", base+"/messages?state=retrying", e.read, "").wantStatus(t, 200).json(t, &page)
		if len(page.Messages) != c.want {
			t.Errorf("retry %s: %d retrying after", c.body, len(page.Messages))
		}
		for _, m := range page.Messages {
			if m.Attempts != 0 || !m.NextAttemptAt.Equal(testNow.Truncate(time.Microsecond)) {
				t.Errorf("retried message %+v: want a fresh schedule, due now", m)
			}
		}
	}
	// Once all are retried, none is dead: none is retried.
	var res struct{ Retried int }
	e.do("POST", base+"/retry", e.admin, `{}`).wantStatus(t, 200).json(t, &res)
	e.do("POST", base+"/retry", e.admin, `{}`).wantStatus(t, 200).json(t, &res)
	if res.Retried != 0 {
		t.Errorf("retried %d of none dead", res.Retried)
	}

	bad := []struct {
		body string
		want []string
	}{
		{`{"eventIds":[]}`, []string{"/eventIds"}},
		{`{"eventIds":["ok",5,"bad id"]}`, []string{"/eventIds/1", "/eventIds/2"}},
		{`{"eventIds":"evt-1"}`, []string{"/eventIds"}},
		{`{"after":"yesterday"}`, []string{"/after"}},
		{`{"after":"2026-01-02T00:00:00Z","before":"2026-01-01T00:00:00Z"}`, []string{"/before"}},
		{`{"state":"failed"}`, []string{"/state"}},
		{`[]`, []string{""}},
	}
	for _, c := range bad {
		p := e.do("POST", base+"/retry", e.admin, c.body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), c.want) {
			t.Errorf("retry %s: errors %+v, want %q", c.body, p.Errors, c.want)
		}
	}
	e.do("POST", base+"/retry", e.read, `{}`).wantStatus(t, 403)
	e.do("POST", base+"/retry", e.other, `{}`).wantStatus(t, 404)
}

func TestAttemptsPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, `{"url":"https://example.com"}`).wantStatus(t, 201).json(t, &sub)
	base := "/v1/subscriptions/" + sub.ID + "/attempts"
	var ids []int64
	for i := 1; i <= 5; i++ {
		outcome, status := herald.AttemptFailed, 500
		if i%2 == 0 {
			outcome, status = herald.AttemptDelivered, 200
		}
		ids = append(ids, e.store.addAttempt(herald.Attempt{AccountID: "acme", SubscriptionID: sub.ID, EventID: fmt.Sprintf("evt-%d", (i+1)/2),
			Seq: int64((i + 1) / 2), Number: 1, At: testNow.Add(time.Duration(i) * time.Minute), Outcome: outcome, StatusCode: status, LatencyMicros: int64(i * 1000)}))
	}
	// Another subscription's attempts are not listed.
	e.store.addAttempt(herald.Attempt{AccountID: "acme", SubscriptionID: "sub_other", EventID: "evt-1", Seq: 1, Number: 1, At: testNow, Outcome: herald.AttemptFailed})

	type page struct {
		Attempts []herald.Attempt
		Next     string
		HasMore  bool
	}
	idsOf := func(p page) []int64 {
		out := []int64{}
		for _, a := range p.Attempts {
			out = append(out, a.ID)
		}
		return out
	}
	var seen []int64
	path := base + "?limit=2"
	for range 5 {
		var p page
		e.do("GET", path, e.read, "").wantStatus(t, 200).json(t, &p)
		seen = append(seen, idsOf(p)...)
		if !p.HasMore {
			break
		}
		path = base + "?limit=2&next=" + p.Next
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Errorf("paged %v, want newest first %v", seen, want)
	}

	for _, c := range []struct {
		query string
		want  []int64
	}{
		{"outcome=delivered", []int64{ids[3], ids[1]}},
		{"outcome=failed&eventId=evt-3", []int64{ids[4]}},
		{"eventId=evt-2", []int64{ids[3], ids[2]}},
		{"after=" + url.QueryEscape(testNow.Add(2*time.Minute).Format(time.RFC3339)) + "&before=" + url.QueryEscape(testNow.Add(4*time.Minute).Format(time.RFC3339)), []int64{ids[2], ids[1]}},
		{"outcome=final", []int64{}},
	} {
		var p page
		e.do("GET", base+"?"+c.query, e.read, "").wantStatus(t, 200).json(t, &p)
		if got := idsOf(p); !slices.Equal(got, c.want) || p.HasMore {
			t.Errorf("%s: %v (hasMore %v), want %v", c.query, got, p.HasMore, c.want)
		}
	}

	for _, c := range []struct{ query, want string }{
		{"outcome=ok", "?outcome"},
		{"limit=0", "?limit"},
		{"next=nope", "?next"},
		{"after=today", "?after"},
		{"eventId=", "?eventId"},
		{"afterSeq=1", "?afterSeq"},
	} {
		p := e.do("GET", base+"?"+c.query, e.read, "").wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{c.want}) {
			t.Errorf("%s: %+v", c.query, p.Errors)
		}
	}
	e.do("GET", base, e.other, "").wantStatus(t, 404)
}

func TestMessagesAndStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := subscribe(t, e)
	base := "/v1/subscriptions/" + id
	e.store.addMessage(herald.Message{AccountID: "acme", SubscriptionID: id, EventID: "evt-4", Seq: 4, OrderKey: "L-1",
		State: herald.MessageWaiting, CreatedAt: testNow.Add(-time.Hour), UpdatedAt: testNow})

	type page struct {
		Messages []herald.Message
		Next     string
		HasMore  bool
	}
	var p page
	e.do("GET", base+"/messages?limit=2", e.read, "").wantStatus(t, 200).json(t, &p)
	if len(p.Messages) != 2 || p.Messages[0].Seq != 1 || p.Messages[1].Seq != 3 || !p.HasMore {
		t.Fatalf("first page %+v", p)
	}
	e.do("GET", base+"/messages?limit=2&next="+p.Next, e.read, "").wantStatus(t, 200).json(t, &p)
	if len(p.Messages) != 1 || p.Messages[0].Seq != 4 || p.Messages[0].OrderKey != "L-1" || p.HasMore {
		t.Errorf("second page %+v", p)
	}
	e.do("GET", base+"/messages?state=dead", e.read, "").wantStatus(t, 200).json(t, &p)
	if len(p.Messages) != 1 || p.Messages[0].EventID != "evt-1" {
		t.Errorf("dead %+v", p)
	}
	e.do("GET", base+"/messages?eventId=evt-3", e.read, "").wantStatus(t, 200).json(t, &p)
	if len(p.Messages) != 1 || p.Messages[0].State != herald.MessageRetrying {
		t.Errorf("of evt-3 %+v", p)
	}
	pr := e.do("GET", base+"/messages?state=failed", e.read, "").wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(pr), []string{"?state"}) {
		t.Errorf("bad state: %+v", pr.Errors)
	}

	// Stats: two attempts (a 503 and a 204), one dead message, two
	// pending, the oldest made an hour before now.
	var st subscriptionStats
	e.do("GET", base+"/stats", e.read, "").wantStatus(t, 200).json(t, &st)
	oldest := testNow.Add(-time.Hour)
	if st.SubscriptionID != id || st.State != herald.SubscriptionActive || st.Attempts != 2 || st.Delivered != 1 || st.Failed != 1 ||
		st.SuccessRate == nil || *st.SuccessRate != 0.5 || st.LatencyP50Micros == nil || *st.LatencyP50Micros != 800 ||
		*st.LatencyP99Micros != 1500 || st.PendingMessages != 2 || st.DeadMessages != 1 || st.AttemptsCapped || st.MessagesCapped ||
		st.OldestPending == nil || !st.OldestPending.Equal(oldest) || !st.Since.Equal(testNow.Truncate(time.Microsecond).Add(-24*time.Hour)) {
		t.Errorf("stats %+v", st)
	}

	// A day later the attempts are out of the window.
	e.advance(25 * time.Hour)
	st = subscriptionStats{}
	e.do("GET", base+"/stats", e.read, "").wantStatus(t, 200).json(t, &st)
	if st.Attempts != 0 || st.SuccessRate != nil || st.LatencyP50Micros != nil || st.PendingMessages != 2 {
		t.Errorf("stats a day later %+v", st)
	}
	e.do("GET", base+"/stats?window=48h", e.read, "").wantStatus(t, 200).json(t, &st)
	if st.Attempts != 2 {
		t.Errorf("stats over 48h %+v", st)
	}

	// Events stored since, that the filter selects, are the backlog's
	// other part.
	if st.UnsentEvents != 0 || st.Backlog != 2 {
		t.Errorf("backlog before any event: %+v", st)
	}
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "login-a"})).wantStatus(t, 201)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "login-b"})).wantStatus(t, 201)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "other", "category": "transfers"})).wantStatus(t, 201)
	e.do("GET", base+"/stats", e.read, "").wantStatus(t, 200).json(t, &st)
	if st.UnsentEvents != 2 || st.Backlog != 4 || st.UnsentCapped {
		t.Errorf("backlog after two matching events: %+v", st)
	}
	for _, w := range []string{"1s", "721h", "day"} {
		pr := e.do("GET", base+"/stats?window="+w, e.read, "").wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(pr), []string{"?window"}) {
			t.Errorf("window=%s: %+v", w, pr.Errors)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var hundred []int64
	for i := int64(1); i <= 100; i++ {
		hundred = append(hundred, i)
	}
	for _, c := range []struct {
		list    []int64
		p       int
		want    int64
		comment string
	}{
		{[]int64{7}, 50, 7, "one"},
		{[]int64{7}, 99, 7, "one"},
		{[]int64{1, 2}, 50, 1, "two"},
		{[]int64{1, 2}, 99, 2, "two"},
		{hundred, 50, 50, "hundred"},
		{hundred, 99, 99, "hundred"},
		{append(slices.Clone(hundred), 1000), 99, 100, "hundred and one"},
	} {
		if got := percentile(c.list, c.p); got != c.want {
			t.Errorf("%s: p%d = %d, want %d", c.comment, c.p, got, c.want)
		}
	}
}

// TestSubscriptionRequestSchemas checks the documented request bodies
// against bodies the server takes: the Lytics examples and a
// subscription for POST, and a subscription as GET answers it for PUT.
func TestSubscriptionRequestSchemas(t *testing.T) {
	t.Parallel()
	post := schemaAt(t, "/paths/"+escapeToken("/v1/subscriptions")+"/post/requestBody/content/application~1json/schema")
	put := schemaAt(t, "/paths/"+escapeToken("/v1/subscriptions/{id}")+"/put/requestBody/content/application~1json/schema")
	e := newEnv(t)
	check := func(sch *jsonschema.Schema, name, body string) {
		t.Helper()
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s does not match the documented request body: %v\n%s", name, err, body)
		}
	}
	for _, name := range []string{"basic", "slack", "sources-by-id", "sources-all-works"} {
		body := lyticsExample(t, name)
		for _, placeholder := range []string{"YOUR_WEBHOOK_ENDPOINT", "YOUR_SLACK_WEBHOOK_URL"} {
			body = strings.Replace(body, placeholder, "https://example.com/hook", 1)
		}
		e.do("POST", "/v1/subscriptions", e.admin, body).wantStatus(t, 201)
		check(post, name, body)
	}
	full := `{"name":"n","url":"https://example.com","filter":{"system_event_sources":{"work":[]},"types":["transfers/*"],"origin":"system"},
		"headers":{"X-A":"b"},"json_template":"{}","rateLimit":1.5,"ordered":true,"maxInFlight":2,"retrySchedule":["1s"],"timeout":"2s","disableAfter":"1h"}`
	var sub newSubscription
	e.do("POST", "/v1/subscriptions", e.admin, full).wantStatus(t, 201).json(t, &sub)
	check(post, "a full subscription", full)
	r := e.do("GET", "/v1/subscriptions/"+sub.ID, e.admin, "").wantStatus(t, 200)
	e.do("PUT", "/v1/subscriptions/"+sub.ID, e.admin, string(r.body)).wantStatus(t, 200)
	check(put, "a subscription as read", string(r.body))
}
