package httpapi

import (
	"bytes"
	"context"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// TestAuditFilter checks how the query of GET /v1/audit becomes the
// store's filter: always the system events, the Lytics keys as
// herald.Filter puts them, and the plainer parameters beside them.
func TestAuditFilter(t *testing.T) {
	t.Parallel()
	var got herald.EventFilter
	events := &mock.EventService{FindEventsFn: func(ctx context.Context, accountID string, f herald.EventFilter) ([]*herald.Event, error) {
		got = f
		return nil, nil
	}}
	e := newEnv(t, func(c *Config) { c.Events = events })
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	q := url.QueryEscape
	cases := []struct {
		query string
		want  herald.EventFilter
	}{
		{"", herald.EventFilter{}},
		{"system_event_type=failed", herald.EventFilter{Types: []string{"failed"}}},
		{"system_event_multiple_types=updated,created,failed", herald.EventFilter{Types: []string{"created", "failed", "updated"}}},
		{"system_event_multiple_types=updated&system_event_multiple_types=created", herald.EventFilter{Types: []string{"created", "updated"}}},
		{"system_event_multiple_types=" + q("updated, created"), herald.EventFilter{Types: []string{"created", "updated"}}},
		{"system_event_type=failed&system_event_multiple_types=failed,synced&verb=started",
			herald.EventFilter{Types: []string{"failed", "started", "synced"}}},
		{"verb=deleted", herald.EventFilter{Types: []string{"deleted"}}},
		{"system_event_sources=" + q(`{"work":["id-1","id-2"],"alert":[]}`),
			herald.EventFilter{Sources: map[string][]string{"work": {"id-1", "id-2"}, "alert": {}}}},
		{"system_event_sources=" + q(`{"work":[]}`), herald.EventFilter{Sources: map[string][]string{"work": {}}}},
		{"system_event_sources=" + q(`{}`), herald.EventFilter{}},
		{"subjectType=apikey&subjectId=key_1&agentId=key_admin",
			herald.EventFilter{Category: "apikey", PrimaryID: "key_1", AgentID: "key_admin"}},
		{"occurredAfter=2026-01-01T00:00:00Z&occurredBefore=2026-01-02T00:00:00Z",
			herald.EventFilter{OccurredAfter: after, OccurredBefore: before}},
		{"afterSeq=5&limit=10", herald.EventFilter{AfterSeq: 5, Limit: 11}},
		{"afterSeq=5&next=" + encodeCursor(8), herald.EventFilter{AfterSeq: 8}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			e.do("GET", "/v1/audit?"+c.query, e.read, "").wantStatus(t, 200)
			want := c.want
			want.Origin, want.BodiesOnly = herald.OriginSystem, true
			if want.Limit == 0 {
				want.Limit = defaultPageSize + 1
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("filter\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestAuditParamsInvalid checks that each bad parameter is named, the
// Lytics keys with the place within their value.
func TestAuditParamsInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := url.QueryEscape
	cases := []struct {
		query    string
		pointers []string
	}{
		{"system_event_sources=work", []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`{"work":`), []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`["work"]`), []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`{"work":"id-1"}`), []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`{"work":[1]}`), []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`{} {}`), []string{"?system_event_sources"}},
		{"system_event_sources=null", []string{"?system_event_sources"}},
		{"system_event_sources=" + q(`{"work":["id-1",""]}`), []string{"?system_event_sources/work/1"}},
		{"system_event_sources=" + q(`{"a/b!":[]}`), []string{"?system_event_sources/a~1b!"}},
		{"system_event_sources=" + q(`{"work":["`+strings.Repeat("i", maxSourcesLength)+`"]}`), []string{"?system_event_sources"}},
		{"system_event_type=" + q("fail ed"), []string{"?system_event_type"}},
		{"system_event_type=", []string{"?system_event_type"}},
		{"system_event_type=failed&system_event_type=updated", []string{"?system_event_type"}},
		{"system_event_multiple_types=updated,,failed", []string{"?system_event_multiple_types/1"}},
		{"system_event_multiple_types=updated&system_event_multiple_types=bad!", []string{"?system_event_multiple_types/1"}},
		{"system_event_multiple_types=", []string{"?system_event_multiple_types"}},
		{"verb=bad!", []string{"?verb"}},
		{"subjectType=", []string{"?subjectType"}},
		{"limit=0", []string{"?limit"}},
		{"occurredAfter=today", []string{"?occurredAfter"}},
		{"origin=api", []string{"?origin"}},
		{"system_event_type=bad!&system_event_sources=x&limit=0", []string{"?system_event_sources", "?system_event_type", "?limit"}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p := e.do("GET", "/v1/audit?"+c.query, e.read, "").wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("pointers %q, want %q (%s)", got, c.pointers, p.Detail)
			}
		})
	}
	p := e.do("GET", "/v1/audit?system_event_sources=work", e.read, "").problem(t)
	if !strings.Contains(p.Detail, `{"work":["id-1"]}`) {
		t.Errorf("a bad system_event_sources is not shown its shape: %q", p.Detail)
	}
}

// TestAuditLog reads the system events that changes and journeys wrote:
// each names the key that caused it, and the Lytics keys select them.
func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.do("PUT", "/v1/settings", e.admin, `{"visits":{"timeout":"10m"}}`).wantStatus(t, 200)
	var created struct{ ID string }
	e.do("POST", "/v1/keys", e.admin, `{"name":"ci","scopes":["read"]}`).wantStatus(t, 201).json(t, &created)
	e.do("DELETE", "/v1/keys/"+created.ID, e.admin, "").wantStatus(t, 204)
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"sessionId": "S-1"})).wantStatus(t, 201)

	audit := func(query string) []map[string]any {
		t.Helper()
		var p page
		e.do("GET", "/v1/audit?"+query, e.read, "").wantStatus(t, 200).json(t, &p)
		return p.Events
	}
	summary := func(events []map[string]any) []string {
		var out []string
		for _, ev := range events {
			out = append(out, ev["category"].(string)+" "+ev["type"].(string)+" "+ev["primaryId"].(string)+" by "+ev["agentId"].(string))
		}
		return out
	}
	all := audit("")
	want := []string{
		"settings updated acme by key_admin",
		"apikey created " + created.ID + " by key_admin",
		"apikey deleted " + created.ID + " by key_admin",
		"session started S-1 by key_ingest",
	}
	if got := summary(all); !slices.Equal(got, want) {
		t.Fatalf("audit log\n got %q\nwant %q", got, want)
	}
	for _, ev := range all {
		if ev["origin"] != herald.OriginSystem || ev["agentType"] != herald.AgentTypeAPIKey || ev["hash"] == nil {
			t.Errorf("system event %v", ev)
		}
	}

	for _, c := range []struct {
		query string
		want  []string
	}{
		{"system_event_type=deleted", want[2:3]},
		{"system_event_multiple_types=created,deleted", want[1:3]},
		{"system_event_sources=" + url.QueryEscape(`{"apikey":[]}`), want[1:3]},
		{"system_event_sources=" + url.QueryEscape(`{"apikey":["nope"],"settings":["acme"]}`), want[0:1]},
		{"system_event_type=created&system_event_sources=" + url.QueryEscape(`{"apikey":[]}`), want[1:2]},
		{"subjectType=session&verb=started", want[3:4]},
		{"subjectId=" + created.ID, want[1:3]},
		{"agentId=key_ingest", want[3:4]},
		{"verb=updated&system_event_type=started", []string{want[0], want[3]}},
		{"system_event_type=failed", nil},
	} {
		if got := summary(audit(c.query)); !slices.Equal(got, c.want) {
			t.Errorf("audit?%s\n got %q\nwant %q", c.query, got, c.want)
		}
	}

	// GET /v1/events?origin=system lists the same events.
	var p page
	e.do("GET", "/v1/events?origin=system", e.read, "").wantStatus(t, 200).json(t, &p)
	if got := summary(p.Events); !slices.Equal(got, want) {
		t.Errorf("events?origin=system %q", got)
	}
	// Another account's log holds none of them.
	e.do("GET", "/v1/audit", e.other, "").wantStatus(t, 200).json(t, &p)
	if len(p.Events) != 0 {
		t.Errorf("another account sees %q", summary(p.Events))
	}
}

// TestAuditVerify verifies the chain: it holds after changes, and a
// system event changed in the store breaks it, still answered with 200.
func TestAuditVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var r herald.AuditReport
	e.do("GET", "/v1/audit/verify", e.read, "").wantStatus(t, 200).json(t, &r)
	if !r.Verified || r.Checked != 0 || r.AccountID != "acme" || r.Break != nil {
		t.Errorf("empty chain: %+v", r)
	}

	e.do("PUT", "/v1/settings", e.admin, `{"unknownTypes":"reject"}`).wantStatus(t, 200)
	e.do("POST", "/v1/events", e.ingest, event(nil)).wantStatus(t, 201)
	e.do("PUT", "/v1/settings", e.admin, `{}`).wantStatus(t, 200)
	var p page
	e.do("GET", "/v1/audit", e.read, "").wantStatus(t, 200).json(t, &p)
	if len(p.Events) != 3 {
		t.Fatalf("audit log %v", p.Events)
	}
	e.do("GET", "/v1/audit/verify", e.read, "").wantStatus(t, 200).json(t, &r)
	last := p.Events[2]
	if !r.Verified || r.Checked != 3 || r.Head != last["hash"] || float64(r.LastSeq) != last["seq"] {
		t.Errorf("chain of 3: %+v, last event %v", r, last)
	}

	// Tamper with the second system event, as someone with access to the
	// database might.
	e.store.mu.Lock()
	for i, ev := range e.store.events["acme"] {
		if ev.ID == p.Events[1]["id"] {
			c := *ev
			c.Body = bytes.Replace(ev.Body, []byte(`"key_ingest"`), []byte(`"key_other"`), 1)
			e.store.events["acme"][i] = &c
		}
	}
	e.store.mu.Unlock()
	r = herald.AuditReport{}
	e.do("GET", "/v1/audit/verify", e.read, "").wantStatus(t, 200).json(t, &r)
	if r.Verified || r.Checked != 1 || r.Break == nil || r.Break.ID != p.Events[1]["id"] || r.Break.Reason == "" {
		t.Errorf("tampered chain: %+v (break %+v)", r, r.Break)
	}

	// Another account's chain is its own.
	e.do("GET", "/v1/audit/verify", e.other, "").wantStatus(t, 200).json(t, &r)
	if !r.Verified || r.AccountID != "other" || r.Checked != 0 {
		t.Errorf("other account: %+v", r)
	}
}

// TestSettingsJourneys round-trips the session, visit and journey event
// settings: what is left out keeps its default, at any depth, and each
// bad field is named.
func TestSettingsJourneys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var s herald.Settings
	e.do("GET", "/v1/settings", e.read, "").wantStatus(t, 200).json(t, &s)
	if !reflect.DeepEqual(&s, herald.DefaultSettings()) {
		t.Errorf("default settings %+v", s)
	}

	body := `{"sessions":{"loginTypes":["authentication/login"],"maxLength":"8h"},"visits":{"timeout":"1h30m"},"journeyEvents":{"visitStarted":false}}`
	e.do("PUT", "/v1/settings", e.admin, body).wantStatus(t, 200).json(t, &s)
	want := herald.DefaultSettings()
	want.Sessions.LoginTypes = []string{"authentication/login"}
	want.Sessions.MaxLength = herald.Duration(8 * time.Hour)
	want.Visits.Timeout = herald.Duration(90 * time.Minute)
	want.JourneyEvents.VisitStarted = false
	if !reflect.DeepEqual(&s, want) {
		t.Errorf("put answered\n %+v\nwant %+v", s, want)
	}
	s = herald.Settings{}
	r := e.do("GET", "/v1/settings", e.read, "").wantStatus(t, 200)
	r.json(t, &s)
	if !reflect.DeepEqual(&s, want) {
		t.Errorf("read back\n %+v\nwant %+v", s, want)
	}
	if !strings.Contains(string(r.body), `"maxLength":"8h0m0s"`) || !strings.Contains(string(r.body), `"timeout":"1h30m0s"`) {
		t.Errorf("durations not written as Go does: %s", r.body)
	}

	// What GET answered can be sent back as it is.
	e.do("PUT", "/v1/settings", e.admin, string(r.body)).wantStatus(t, 200)

	// An empty list is [], not null.
	r = e.do("PUT", "/v1/settings", e.admin, `{"sessions":{"loginTypes":null,"logoutTypes":[]}}`).wantStatus(t, 200)
	if !strings.Contains(string(r.body), `"loginTypes":[],"logoutTypes":[]`) {
		t.Errorf("empty lists: %s", r.body)
	}

	for _, c := range []struct{ body, pointer string }{
		{`{"sessions":{"maxLength":"forever"}}`, "/sessions/maxLength"},
		{`{"sessions":{"inactivityTimeout":30}}`, "/sessions/inactivityTimeout"},
		{`{"visits":{"timeout":"0s"}}`, "/visits/timeout"},
		{`{"visits":{"timeout":"1000h"}}`, "/visits/timeout"},
		{`{"sessions":{"loginTypes":["userLoggedIn"]}}`, "/sessions/loginTypes/0"},
		{`{"sessions":{"loginTypes":"authentication/userLoggedIn"}}`, "/sessions/loginTypes"},
		{`{"sessions":{"logoutTypes":["authentication/userLoggedIn"]}}`, "/sessions/logoutTypes"},
		{`{"sessions":{"colour":"red"}}`, "/sessions/colour"},
		{`{"colour":"red"}`, "/colour"},
		{`{"sessions":{"maxLength":"8h","inactivityTimeout":"x"}}`, "/sessions/inactivityTimeout"},
		{`{"journeyEvents":{"visitStarted":"no"}}`, "/journeyEvents/visitStarted"},
	} {
		p := e.do("PUT", "/v1/settings", e.admin, c.body).wantStatus(t, 400).problem(t)
		if !slices.Equal(pointers(p), []string{c.pointer}) {
			t.Errorf("%s: pointers %q, want %q (%s)", c.body, pointers(p), c.pointer, p.Detail)
		}
	}
}
