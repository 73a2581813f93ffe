package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// TestIngestInvalid sends each way an envelope can be wrong, with the exact
// status and pointers it must produce.
func TestIngestInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		name     string
		body     string
		want     int
		pointers []string
	}{
		{"unknown field", event(map[string]any{"colour": "red"}), 400, []string{"/colour"}},
		{"misspelt field", event(map[string]any{"eventstatus": "attempted"}), 400, []string{"/eventstatus"}},
		{"both spellings of eventStatus", event(map[string]any{"eventStatus": "a", "event_status": "a"}), 400, []string{"/event_status"}},
		{"both spellings of eventLifecycleId", event(map[string]any{"eventLifecycleId": "l", "event_lifecycle_id": "l"}), 400, []string{"/event_lifecycle_id"}},
		{"occurredAt not RFC 3339", event(map[string]any{"occurredAt": "2026-01-02 15:04:05"}), 400, []string{"/occurredAt"}},
		{"occurredAt not a string", event(map[string]any{"occurredAt": 1767366245}), 400, []string{"/occurredAt"}},
		{"data an array", event(map[string]any{"data": []int{1}}), 400, []string{"/data"}},
		{"data a string", event(map[string]any{"data": "x"}), 400, []string{"/data"}},
		{"no category", event(map[string]any{"category": nil}), 400, []string{"/category"}},
		{"no type", event(map[string]any{"type": nil}), 400, []string{"/type"}},
		{"empty category", event(map[string]any{"category": ""}), 400, []string{"/category"}},
		{"category with a space", event(map[string]any{"category": "log in"}), 400, []string{"/category"}},
		{"seq sent", event(map[string]any{"seq": 1}), 400, []string{"/seq"}},
		{"receivedAt sent", event(map[string]any{"receivedAt": "2026-01-02T15:04:05Z"}), 400, []string{"/receivedAt"}},
		{"origin sent", event(map[string]any{"origin": "system"}), 400, []string{"/origin"}},
		{"id with a slash", event(map[string]any{"id": "a/b"}), 400, []string{"/id"}},
		{"id too long", event(map[string]any{"id": strings.Repeat("i", 129)}), 400, []string{"/id"}},
		{"field not a string", event(map[string]any{"agentId": 42}), 400, []string{"/agentId"}},
		{"many faults", `{"type":"x","seq":1,"colour":"red"}`, 400, []string{"/category", "/colour", "/seq"}},
		{"not JSON", `{"category":`, 400, []string{""}},
		{"an array", `[]`, 400, []string{""}},
		{"null", `null`, 400, []string{""}},
		{"empty body", ``, 400, []string{""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.do("POST", "/v1/events", e.ingest, c.body).wantStatus(t, c.want).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
			if p.Type != "https://herald.dev/problems/invalid" || p.Instance != "/v1/events" {
				t.Errorf("type %q instance %q", p.Type, p.Instance)
			}
		})
	}
	if _, n := e.store.calls(); n != 0 {
		t.Errorf("invalid events reached the store %d times", n)
	}
}

func TestIngestCreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var res struct {
		ID, ReceivedAt string
		Seq            int64
		Duplicate      *bool
	}
	// An unregistered type, stored as it is sent.
	r := e.do("POST", "/v1/events", e.ingest, `{"category":"payments","type":"cardCharged","event_status":"attempted","event_lifecycle_id":"L1","data":{"amount":"12.50", "to" : "<acct>"}}`).wantStatus(t, 201)
	r.json(t, &res)
	if res.ID != "evt-0001" || res.Seq != 1 || res.ReceivedAt != "2026-01-02T15:04:05.123456Z" || res.Duplicate != nil {
		t.Errorf("result %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/v1/events/evt-0001" {
		t.Errorf("Location %q", loc)
	}
	got := e.do("GET", r.header.Get("Location"), e.read, "").wantStatus(t, 200)
	want := `{"id":"evt-0001","seq":1,"category":"payments","type":"cardCharged","occurredAt":"2026-01-02T15:04:05.123456Z","receivedAt":"2026-01-02T15:04:05.123456Z","eventStatus":"attempted","eventLifecycleId":"L1","data":{"amount":"12.50","to":"<acct>"},"origin":"api"}`
	if string(got.body) != want {
		t.Errorf("stored event\n got %s\nwant %s", got.body, want)
	}
}

func TestIngestDuplicateAndConflict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := `{"id":"login-1","category":"authentication","type":"userLoggedIn","occurredAt":"2026-01-02T10:00:00Z","data":{"a":1,"b":2}}`
	e.do("POST", "/v1/events", e.ingest, first).wantStatus(t, 201)
	e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, 201)
	e.advance(3600e9)

	// The same content, written differently, is a duplicate: the original's
	// seq and receivedAt come back.
	same := `{ "data" : {"b":2, "a":1}, "occurredAt":"2026-01-02T11:00:00+01:00", "type":"userLoggedIn", "category":"authentication", "id":"login-1" }`
	var res map[string]any
	r := e.do("POST", "/v1/events", e.ingest, same).wantStatus(t, 200)
	r.json(t, &res)
	if res["seq"] != 1.0 || res["duplicate"] != true || res["receivedAt"] != "2026-01-02T15:04:05.123456Z" || res["id"] != "login-1" {
		t.Errorf("duplicate answered %s", r.body)
	}
	if loc := r.header.Get("Location"); loc != "/v1/events/login-1" {
		t.Errorf("Location %q", loc)
	}

	// Other content under the same id is a conflict naming the id.
	p := e.do("POST", "/v1/events", e.ingest, strings.Replace(first, `"b":2`, `"b":3`, 1)).wantStatus(t, 409).problem(t)
	if !strings.Contains(p.Detail, `"login-1"`) || !slices.Equal(pointers(p), []string{"/id"}) || p.Type != "https://herald.dev/problems/conflict" {
		t.Errorf("conflict problem %+v", p)
	}
}

func TestIngestTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := event(map[string]any{"data": map[string]any{"blob": strings.Repeat("x", herald.MaxEventBytes)}})
	p := e.do("POST", "/v1/events", e.ingest, big).wantStatus(t, 413).problem(t)
	if !strings.Contains(p.Detail, "256 KiB") || p.Type != "https://herald.dev/problems/too-large" {
		t.Errorf("problem %+v", p)
	}

	// Without a Content-Length the limit holds as the body is read.
	req, _ := http.NewRequest("POST", e.http.URL+"/v1/events", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Authorization", "Bearer "+e.ingest)
	res, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("chunked: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}

	// Just under the limit is fine.
	pad := herald.MaxEventBytes - len(event(map[string]any{"data": map[string]any{"blob": ""}}))
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"data": map[string]any{"blob": strings.Repeat("x", pad)}})).wantStatus(t, 201)
}

// TestIngestUsesAppender checks that events go through the Appender (the
// group committer), complete, and that the answer comes from its results.
func TestIngestUsesAppender(t *testing.T) {
	t.Parallel()
	var got *herald.AppendBatch
	app := &mock.Appender{AppendFn: func(ctx context.Context, b *herald.AppendBatch) error {
		got = b
		b.Results = []herald.AppendResult{{Seq: 77, ReceivedAt: b.Events[0].ReceivedAt}}
		return nil
	}}
	e := newEnv(t, func(c *Config) { c.Appender = app })
	var res struct{ Seq int64 }
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"occurredAt": "2026-01-01T00:00:00+02:00"})).wantStatus(t, 201).json(t, &res)
	if res.Seq != 77 {
		t.Errorf("seq %d, want the Appender's 77", res.Seq)
	}
	if _, n := e.store.calls(); n != 0 {
		t.Error("the store was called around the Appender")
	}
	if got == nil || got.AccountID != "acme" || got.Atomic || len(got.Events) != 1 {
		t.Fatalf("batch %+v", got)
	}
	ev := got.Events[0]
	if ev.ID != "evt-0001" || ev.AccountID != "acme" || ev.Origin != herald.OriginAPI || ev.Hash == "" ||
		!ev.ReceivedAt.Equal(testNow.Truncate(1000)) || ev.OccurredAt.UTC().Format("2006-01-02T15:04:05Z07:00") != "2025-12-31T22:00:00Z" {
		t.Errorf("event %+v", ev)
	}
}

func TestIngestAppenderFails(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		append func(b *herald.AppendBatch) error
		want   int
	}{
		{"error", func(*herald.AppendBatch) error { return errors.New("pq: could not serialize access") }, 500},
		{"internal herald error", func(*herald.AppendBatch) error {
			return herald.Errorf(herald.EINTERNAL, "pq: could not serialize access")
		}, 500},
		{"result error", func(b *herald.AppendBatch) error {
			b.Results = []herald.AppendResult{{Err: errors.New("pq: could not serialize access")}}
			return nil
		}, 500},
		{"too few results", func(b *herald.AppendBatch) error { return nil }, 500},
		{"panic", func(*herald.AppendBatch) error { panic("pq: could not serialize access") }, 500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(cfg *Config) {
				cfg.Appender = &mock.Appender{AppendFn: func(ctx context.Context, b *herald.AppendBatch) error { return c.append(b) }}
			})
			r := e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, c.want)
			if c.name == "too few results" {
				checkInternal(t, e, r, "returned 0 results")
			} else {
				checkInternal(t, e, r, "pq: could not serialize access")
			}
		})
	}
}

// A client retrying an event stored before its type changed gets the
// answer of a retry, "duplicate", not the new rules' 400; a new event with
// the same content and another id is held to the new rules.
func TestIngestResendAfterTypeChanged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sent := `{"id":"r-1","category":"payments","type":"refund","data":{"amount":5}}`
	e.do("POST", "/v1/events", e.ingest, sent).wantStatus(t, 201)
	e.do("POST", "/v1/event-types", e.admin, `{"category":"payments","type":"refund",
		"schema":{"type":"object","properties":{"amount":{"type":"string"}}},"statuses":[],"terminalStatuses":[]}`).wantStatus(t, 201)

	var res map[string]any
	e.do("POST", "/v1/events", e.ingest, sent).wantStatus(t, 200).json(t, &res)
	if res["duplicate"] != true || res["seq"] != 1.0 {
		t.Errorf("resend answered %v, want the duplicate of seq 1", res)
	}
	p := e.do("POST", "/v1/events", e.ingest, strings.Replace(sent, "r-1", "r-2", 1)).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/data/amount"}) {
		t.Errorf("new event under the new rules: %+v", p)
	}
	p = e.do("POST", "/v1/events", e.ingest, strings.Replace(sent, `"amount":5`, `"amount":6`, 1)).wantStatus(t, 400).problem(t)
	if !slices.Equal(pointers(p), []string{"/data/amount"}) {
		t.Errorf("changed resend: %+v, want the new rules' 400", p)
	}
}
