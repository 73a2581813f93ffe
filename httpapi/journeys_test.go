package httpapi

import (
	"context"
	"net/url"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/mock"
)

// sessionList is the answer of GET /v1/sessions.
type sessionList struct {
	Sessions []herald.Session
	Next     string
	HasMore  bool
}

func (l sessionList) ids() []string {
	out := []string{}
	for _, s := range l.Sessions {
		out = append(out, s.ID)
	}
	return out
}

// visitList is the answer of GET /v1/visits.
type visitList struct {
	Visits  []herald.Visit
	Next    string
	HasMore bool
}

// TestIngestSessionID follows a session through ingest: a login sent
// without a session id gets one in the answer, the events sent with it
// join it, a logout ends it, and events naming an unknown or ended
// session are stored with a flag. Resends answer with the session too.
func TestIngestSessionID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var login ingestResult
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "login-1", "coreCustomerId": "cust-1"})).wantStatus(t, 201).json(t, &login)
	if login.SessionID == "" || len(login.Flags) != 0 {
		t.Fatalf("login answered %+v, want a sessionId and no flags", login)
	}
	var s herald.Session
	e.do("GET", "/v1/sessions/"+login.SessionID, e.read, "").wantStatus(t, 200).json(t, &s)
	if s.ID != login.SessionID || s.EntityID != "cust-1" || !s.Open() || s.StartEventID != "login-1" || s.StartSeq != login.Seq || s.EventCount != 1 {
		t.Errorf("session %+v", s)
	}

	// The same login again: a duplicate, with the session it started.
	var again ingestResult
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"id": "login-1", "coreCustomerId": "cust-1"})).wantStatus(t, 200).json(t, &again)
	if !again.Duplicate || again.SessionID != login.SessionID || again.Seq != login.Seq {
		t.Errorf("resent login answered %+v, want the duplicate of %+v", again, login)
	}

	logout := event(map[string]any{"type": "userLoggedOut", "sessionId": login.SessionID, "coreCustomerId": "cust-1"})
	var out ingestResult
	e.do("POST", "/v1/events", e.ingest, logout).wantStatus(t, 201).json(t, &out)
	if out.SessionID != login.SessionID || len(out.Flags) != 0 {
		t.Errorf("logout answered %+v", out)
	}
	e.do("GET", "/v1/sessions/"+login.SessionID, e.read, "").wantStatus(t, 200).json(t, &s)
	if s.Open() || s.EndReason != herald.EndLogout || s.EventCount != 2 {
		t.Errorf("session after logout %+v", s)
	}

	var late, unknown ingestResult
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"type": "userLoggedOut", "sessionId": login.SessionID})).wantStatus(t, 201).json(t, &late)
	if !slices.Equal(late.Flags, []string{herald.FlagSessionEnded}) || late.SessionID != login.SessionID {
		t.Errorf("event of an ended session answered %+v", late)
	}
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"type": "userLoggedOut", "sessionId": "S-nope"})).wantStatus(t, 201).json(t, &unknown)
	if !slices.Equal(unknown.Flags, []string{herald.FlagSessionUnknown}) || unknown.SessionID != "S-nope" {
		t.Errorf("event of an unknown session answered %+v", unknown)
	}
	var stored map[string]any
	e.do("GET", "/v1/events/"+unknown.ID, e.read, "").wantStatus(t, 200).json(t, &stored)
	if !reflect.DeepEqual(stored["flags"], []any{herald.FlagSessionUnknown}) {
		t.Errorf("stored event %v, want its flag", stored)
	}
}

// TestBatchSessionID checks the batch answers: a login gets its session,
// a flagged event its flags, and a resend of a stored login, settled
// without the store (its id is also used by a conflicting event of the
// batch), still answers the session the login started.
func TestBatchSessionID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stored := event(map[string]any{"id": "known"})
	var first ingestResult
	e.do("POST", "/v1/events", e.ingest, stored).wantStatus(t, 201).json(t, &first)

	var a struct {
		Results []batchItemResult
	}
	e.do("POST", "/v1/events/batch", e.ingest, batch(
		event(nil),
		event(map[string]any{"type": "userLoggedOut", "sessionId": "S-nope"}),
		event(map[string]any{"id": "known", "type": "userLoggedOut"}), // conflicts with the stored one
		stored, // a resend of it
	)).wantStatus(t, 200).json(t, &a)
	r := a.Results
	if len(r) != 4 {
		t.Fatalf("results %+v", r)
	}
	if r[0].Status != itemCreated || r[0].SessionID == "" || r[0].SessionID == first.SessionID {
		t.Errorf("login in a batch: %+v", r[0])
	}
	if r[1].Status != itemCreated || !slices.Equal(r[1].Flags, []string{herald.FlagSessionUnknown}) || r[1].SessionID != "S-nope" {
		t.Errorf("event of an unknown session in a batch: %+v", r[1])
	}
	if r[2].Status != itemFailed {
		t.Errorf("conflicting event: %+v", r[2])
	}
	if r[3].Status != itemDuplicate || r[3].Seq != first.Seq || r[3].SessionID != first.SessionID {
		t.Errorf("resent login: %+v, want the duplicate of %+v", r[3], first)
	}
}

// TestSessionsAndVisits lists sessions and visits through their filters
// and pages.
func TestSessionsAndVisits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ session, customer string }{{"S-1", "cust-1"}, {"S-2", "cust-2"}, {"S-3", "cust-1"}} {
		e.do("POST", "/v1/events", e.ingest, event(map[string]any{"sessionId": c.session, "coreCustomerId": c.customer})).wantStatus(t, 201)
		e.advance(time.Second)
	}
	e.do("POST", "/v1/events", e.ingest, event(map[string]any{"type": "userLoggedOut", "sessionId": "S-2", "coreCustomerId": "cust-2"})).wantStatus(t, 201)

	second := testNow.Truncate(time.Microsecond).Add(time.Second) // when S-2 started
	list := func(query string) sessionList {
		t.Helper()
		var l sessionList
		e.do("GET", "/v1/sessions?"+query, e.read, "").wantStatus(t, 200).json(t, &l)
		return l
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"S-1", "S-2", "S-3"}},
		{"state=open", []string{"S-1", "S-3"}},
		{"state=closed", []string{"S-2"}},
		{"entity=cust-1", []string{"S-1", "S-3"}},
		{"entity=cust-1&state=closed", []string{}},
		{"startedAfter=" + url.QueryEscape(second.Format(time.RFC3339Nano)), []string{"S-2", "S-3"}},
		{"startedBefore=" + url.QueryEscape(second.Format(time.RFC3339Nano)), []string{"S-1"}},
	} {
		if got := list(c.query).ids(); !slices.Equal(got, c.want) {
			t.Errorf("sessions?%s: %q, want %q", c.query, got, c.want)
		}
	}

	// Paging: one at a time, with the cursor.
	var seen []string
	l := list("limit=1")
	for {
		seen = append(seen, l.ids()...)
		if !l.HasMore {
			break
		}
		l = list("limit=1&next=" + l.Next)
	}
	if !slices.Equal(seen, []string{"S-1", "S-2", "S-3"}) {
		t.Errorf("paged sessions %q", seen)
	}
	if l = list("next=" + l.Next); len(l.Sessions) != 0 || l.Sessions == nil {
		t.Errorf("page after the last: %+v", l)
	}

	var v visitList
	e.do("GET", "/v1/visits?entity=cust-1", e.read, "").wantStatus(t, 200).json(t, &v)
	if len(v.Visits) != 1 || v.Visits[0].EntityID != "cust-1" || v.Visits[0].EventCount != 2 || !v.Visits[0].Open() {
		t.Fatalf("visits of cust-1: %+v", v)
	}
	var one herald.Visit
	e.do("GET", "/v1/visits/"+v.Visits[0].ID, e.read, "").wantStatus(t, 200).json(t, &one)
	if one.ID != v.Visits[0].ID || one.FirstSeq != v.Visits[0].FirstSeq {
		t.Errorf("visit %+v, listed %+v", one, v.Visits[0])
	}
	e.do("GET", "/v1/visits?state=open", e.read, "").wantStatus(t, 200).json(t, &v)
	if len(v.Visits) != 2 {
		t.Errorf("open visits: %+v", v.Visits)
	}

	// Another account sees none of them.
	e.do("GET", "/v1/sessions/S-1", e.other, "").wantStatus(t, 404)
	e.do("GET", "/v1/visits/"+one.ID, e.other, "").wantStatus(t, 404)
}

// TestJourneyFilter checks how the query becomes the store's filter.
func TestJourneyFilter(t *testing.T) {
	t.Parallel()
	var gotSessions, gotVisits herald.JourneyFilter
	sessions := &mock.SessionService{FindSessionsFn: func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Session, error) {
		gotSessions = f
		return nil, nil
	}}
	visits := &mock.VisitService{FindVisitsFn: func(ctx context.Context, accountID string, f herald.JourneyFilter) ([]*herald.Visit, error) {
		gotVisits = f
		return nil, nil
	}}
	e := newEnv(t, func(c *Config) { c.Sessions, c.Visits = sessions, visits })
	after := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	before := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		query string
		want  herald.JourneyFilter
	}{
		{"", herald.JourneyFilter{Limit: 101}},
		{"entity=cust-1&state=open&limit=5", herald.JourneyFilter{EntityID: "cust-1", State: "open", Limit: 6}},
		{"state=closed&afterSeq=7", herald.JourneyFilter{State: "closed", AfterSeq: 7, Limit: 101}},
		{"startedAfter=2026-01-01T00:00:00Z&startedBefore=2026-01-02T00:00:00Z&next=" + encodeCursor(9),
			herald.JourneyFilter{StartedAfter: after, StartedBefore: before, AfterSeq: 9, Limit: 101}},
	}
	for _, c := range cases {
		e.do("GET", "/v1/sessions?"+c.query, e.read, "").wantStatus(t, 200)
		e.do("GET", "/v1/visits?"+c.query, e.read, "").wantStatus(t, 200)
		if !reflect.DeepEqual(gotSessions, c.want) || !reflect.DeepEqual(gotVisits, c.want) {
			t.Errorf("%s:\n sessions %+v\n visits   %+v\n want     %+v", c.query, gotSessions, gotVisits, c.want)
		}
	}

	for _, c := range []struct {
		query    string
		pointers []string
	}{
		{"state=maybe", []string{"?state"}},
		{"state=", []string{"?state"}},
		{"entity=", []string{"?entity"}},
		{"startedAfter=today", []string{"?startedAfter"}},
		{"startedAfter=2026-01-02T00:00:00Z&startedBefore=2026-01-01T00:00:00Z", []string{"?startedBefore"}},
		{"limit=0", []string{"?limit"}},
		{"next=eA", []string{"?next"}},
		{"occurredAfter=2026-01-01T00:00:00Z", []string{"?occurredAfter"}},
		{"state=open&state=closed", []string{"?state"}},
	} {
		for _, path := range []string{"/v1/sessions", "/v1/visits"} {
			p := e.do("GET", path+"?"+c.query, e.read, "").wantStatus(t, 400).problem(t)
			if got := pointers(p); !slices.Equal(got, c.pointers) {
				t.Errorf("%s?%s: pointers %q, want %q (%s)", path, c.query, got, c.pointers, p.Detail)
			}
		}
	}
}
