package storetest

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// Times in the journey cases are receivedAt values the cases choose: a
// session's or visit's clock is Herald's, and AppendEvents takes it from
// the events, so no case waits for time to pass.

func testSessions(t *testing.T, newDB NewDatabase) {
	t0 := baseTime.Add(time.Hour)
	after := func(d time.Duration) time.Time { return t0.Add(d) }
	ingest := herald.Actor{ID: "key_ingest", Type: herald.AgentTypeAPIKey}

	t.Run("LoginToLogout", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		newAccount(t, s, "globex")
		base := lastSeq(t, s, "acme")

		// A login sent without a session id starts a session under an id
		// Herald gives it.
		res := appendBy(t, s, "acme", ingest, login(t, "in", "C1", "", t0))[0]
		wantStored(t, "login", res, base+1, t0)
		id := res.SessionID
		if id == "" || len(res.Flags) != 0 {
			t.Fatalf("login: result session %q, flags %q; want a session id and no flags", id, res.Flags)
		}
		if e := findEvent(t, s, "acme", "in"); e.SessionID != id || !bytes.Contains(e.Body, []byte(`"sessionId":"`+id+`"`)) {
			t.Errorf("stored login: sessionId %q, body %s; want session %q", e.SessionID, e.Body, id)
		}
		want := &herald.Session{
			ID: id, AccountID: "acme", EntityID: "C1", StartedAt: t0, LastActivityAt: t0,
			ExpiresAt: after(herald.DefaultSessionTimeout), EventCount: 1, StartEventID: "in", StartSeq: base + 1, LastSeq: base + 1,
		}
		wantSession(t, "after the login", findSession(t, s, "acme", id), want)
		// The login began the entity's profile, its visit and the session:
		// a system event each, after it, by the key that sent it.
		sys := newEvents(t, s, "acme", base+1)
		if got := kinds(sys); !slices.Equal(got, []string{"entity/created", "session/started", "visit/started"}) {
			t.Fatalf("system events of the login: %s; want entity created, visit started and session started", fmtSystemEvents(sys))
		}
		wantSeqs(t, s, "acme", base, []string{"in"})
		started := findKind(t, sys, herald.SubjectSession, herald.VerbStarted)
		d := wantSystemEvent(t, "session started", started, "acme", herald.SubjectSession, herald.VerbStarted, id, ingest)
		wantMember(t, "session started", d, "/entityId", "C1")
		wantMember(t, "session started", d, "/eventId", "in")
		if !started.OccurredAt.Equal(t0) || !started.ReceivedAt.Equal(t0) {
			t.Errorf("session started occurred at %s, received at %s; want both at the login, %s", started.OccurredAt, started.ReceivedAt, t0)
		}
		wantSystemEvent(t, "entity created", findKind(t, sys, herald.SubjectEntity, herald.VerbCreated),
			"acme", herald.SubjectEntity, herald.VerbCreated, "C1", ingest)

		// Sent again, alone or twice in one call: a duplicate, of the same
		// session, and nothing new is written.
		mark := lastSeq(t, s, "acme")
		for i, r := range appendBy(t, s, "acme", ingest,
			login(t, "in", "C1", "", after(10*time.Second)), login(t, "in", "C1", "", after(20*time.Second))) {
			wantDuplicate(t, fmt.Sprintf("login sent again (%d)", i+1), r, base+1, t0)
			if r.SessionID != id {
				t.Errorf("login sent again (%d): session %q, want %q", i+1, r.SessionID, id)
			}
		}
		if got := newEvents(t, s, "acme", mark); len(got) != 0 {
			t.Errorf("the resent login wrote %s", fmtSystemEvents(got))
		}
		wantSession(t, "after the resends", findSession(t, s, "acme", id), want)

		// An event of the session counts and keeps it alive.
		res = appendBy(t, s, "acme", ingest, page(t, "p1", "C1", id, after(time.Minute)))[0]
		if res.Err != nil || res.SessionID != id || len(res.Flags) != 0 {
			t.Errorf("event of the session: %s, session %q, flags %q; want stored in %q, no flags", fmtResult(res), res.SessionID, res.Flags, id)
		}
		want.LastActivityAt, want.ExpiresAt = after(time.Minute), after(time.Minute+herald.DefaultSessionTimeout)
		want.EventCount, want.LastSeq = 2, res.Seq
		wantSession(t, "after an event of the session", findSession(t, s, "acme", id), want)

		// An event of a session Herald does not know is stored, flagged.
		res = appendBy(t, s, "acme", ingest, page(t, "p2", "C1", "S-unknown", after(time.Minute)))[0]
		wantFlags(t, "event of an unknown session", s, "acme", res, "p2", herald.FlagSessionUnknown)
		_, err := s.FindSessionByID(t.Context(), "acme", "S-unknown")
		wantCode(t, "FindSessionByID(the unknown session)", err, herald.ENOTFOUND)

		// The logout ends the session when it happened, and says so.
		mark = lastSeq(t, s, "acme")
		ended := after(2 * time.Minute)
		res = appendBy(t, s, "acme", ingest, logout(t, "out", "C1", id, ended))[0]
		if res.Err != nil || res.Seq != mark+1 || res.SessionID != id || len(res.Flags) != 0 {
			t.Errorf("logout: %s, session %q, flags %q; want stored at seq %d in %q, no flags", fmtResult(res), res.SessionID, res.Flags, mark+1, id)
		}
		want.LastActivityAt, want.EndedAt, want.EndReason, want.ExpiresAt = ended, &ended, herald.EndLogout, time.Time{}
		want.EventCount, want.LastSeq = 3, res.Seq
		wantSession(t, "after the logout", findSession(t, s, "acme", id), want)
		sys = newEvents(t, s, "acme", res.Seq)
		if len(sys) != 1 {
			t.Fatalf("the logout wrote %s after it; want session ended", fmtSystemEvents(sys))
		}
		d = wantSystemEvent(t, "session ended", sys[0], "acme", herald.SubjectSession, herald.VerbEnded, id, ingest)
		wantMember(t, "session ended", d, "/reason", herald.EndLogout)
		wantMember(t, "session ended", d, "/entityId", "C1")
		if !sys[0].OccurredAt.Equal(ended) {
			t.Errorf("session ended occurred at %s, want at the logout, %s", sys[0].OccurredAt, ended)
		}

		// An ended session takes no more events: they are stored, flagged.
		res = appendBy(t, s, "acme", ingest, page(t, "p3", "C1", id, after(3*time.Minute)))[0]
		wantFlags(t, "event of an ended session", s, "acme", res, "p3", herald.FlagSessionEnded)
		wantSession(t, "after an event of the ended session", findSession(t, s, "acme", id), want)
		if got := allEvents(t, s, "acme", herald.EventFilter{SessionID: id}); !slices.Equal(ids(got), []string{"in", "p1", "out", "p3"}) {
			t.Errorf("FindEvents(session) = %v, want [in p1 out p3]", ids(got))
		}

		// A login may bring its own session id; a login of no entity
		// starts a session of none, and no visit.
		mark = lastSeq(t, s, "acme")
		res = appendBy(t, s, "acme", ingest, login(t, "in2", "", "S-mine", after(4*time.Minute)))[0]
		if res.Err != nil || res.SessionID != "S-mine" || len(res.Flags) != 0 {
			t.Errorf("login with a session id: %s, session %q, flags %q; want stored in S-mine", fmtResult(res), res.SessionID, res.Flags)
		}
		wantSession(t, "session S-mine", findSession(t, s, "acme", "S-mine"), &herald.Session{
			ID: "S-mine", AccountID: "acme", StartedAt: after(4 * time.Minute), LastActivityAt: after(4 * time.Minute),
			ExpiresAt: after(4*time.Minute + herald.DefaultSessionTimeout), EventCount: 1, StartEventID: "in2",
			StartSeq: mark + 1, LastSeq: mark + 1,
		})
		if sys := newEvents(t, s, "acme", mark+1); !slices.Equal(kinds(sys), []string{"session/started"}) {
			t.Errorf("system events of a login of no entity: %s; want session started only", fmtSystemEvents(sys))
		}
		res = appendBy(t, s, "acme", ingest, login(t, "in3", "", "", after(5*time.Minute)))[0]
		if res.SessionID == "" || res.SessionID == id || res.SessionID == "S-mine" {
			t.Errorf("another login: session %q; want a new one", res.SessionID)
		}

		_, err = s.FindSessionByID(t.Context(), "globex", id)
		wantCode(t, "FindSessionByID(another account's session)", err, herald.ENOTFOUND)
		_, err = s.FindSessionByID(t.Context(), "acme", "nope")
		wantCode(t, "FindSessionByID(unknown)", err, herald.ENOTFOUND)
		wantAuditVerified(t, s, "acme")
	})

	t.Run("CustomLoginTypes", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		set := herald.DefaultSettings()
		set.Sessions.LoginTypes = []string{"custom/signIn"}
		set.Sessions.LogoutTypes = []string{"custom/signOut"}
		set.Sessions.InactivityTimeout = herald.Duration(time.Minute)
		set.JourneyEvents.SessionStarted = false
		putSettings(t, s, "acme", set)

		// The default login type starts no session now.
		res := appendBy(t, s, "acme", ingest, login(t, "std", "", "", t0))[0]
		if res.Err != nil || res.SessionID != "" {
			t.Errorf("userLoggedIn, no longer a login type: %s, session %q; want stored without a session", fmtResult(res), res.SessionID)
		}
		if e := findEvent(t, s, "acme", "std"); e.SessionID != "" {
			t.Errorf("stored userLoggedIn has session %q, want none", e.SessionID)
		}

		mark := lastSeq(t, s, "acme")
		res = appendBy(t, s, "acme", ingest, journeyEvent(t, "in", "custom", "signIn", "", "", t0))[0]
		id := res.SessionID
		if id == "" {
			t.Fatalf("custom login: no session")
		}
		// Session started is switched off.
		if got := newEvents(t, s, "acme", mark); len(got) != 1 {
			t.Errorf("custom login wrote %s; want the login only", fmtSystemEvents(got))
		}
		want := &herald.Session{
			ID: id, AccountID: "acme", StartedAt: t0, LastActivityAt: t0, ExpiresAt: after(time.Minute),
			EventCount: 1, StartEventID: "in", StartSeq: res.Seq, LastSeq: res.Seq,
		}
		wantSession(t, "after the custom login", findSession(t, s, "acme", id), want)

		// The default logout type ends nothing now; the custom one does.
		res = appendBy(t, s, "acme", ingest, logout(t, "std-out", "", id, after(30*time.Second)))[0]
		want.LastActivityAt, want.ExpiresAt, want.EventCount, want.LastSeq = after(30*time.Second), after(90*time.Second), 2, res.Seq
		wantSession(t, "after userLoggedOut, no longer a logout type", findSession(t, s, "acme", id), want)
		ended := after(40 * time.Second)
		res = appendBy(t, s, "acme", ingest, journeyEvent(t, "out", "custom", "signOut", "", id, ended))[0]
		want.LastActivityAt, want.EndedAt, want.EndReason, want.ExpiresAt = ended, &ended, herald.EndLogout, time.Time{}
		want.EventCount, want.LastSeq = 3, res.Seq
		wantSession(t, "after the custom logout", findSession(t, s, "acme", id), want)
		if sys := newEvents(t, s, "acme", res.Seq); !slices.Equal(kinds(sys), []string{"session/ended"}) {
			t.Errorf("custom logout wrote %s after it; want session ended", fmtSystemEvents(sys))
		}
	})

	t.Run("AtomicBatchUndone", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		appendOne(t, s, "acme", page(t, "x", "", "", t0))
		mark := lastSeq(t, s, "acme")

		// The login and its session, profile and visit go with the batch.
		b := &herald.AppendBatch{AccountID: "acme", Atomic: true, By: ingest, Events: []*herald.Event{
			login(t, "in", "C1", "", t0), page(t, "x", "C9", "", t0),
		}}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
			t.Fatalf("AppendEvents: %v", err)
		}
		wantConflict(t, "login of the failed atomic batch", b.Results[0], "x")
		if got := newEvents(t, s, "acme", mark); len(got) != 0 {
			t.Errorf("the failed atomic batch wrote %s", fmtSystemEvents(got))
		}
		if got := findSessions(t, s, "acme", herald.JourneyFilter{Limit: 10}); len(got) != 0 {
			t.Errorf("sessions after the failed atomic batch: %v, want none", sessionIDs(got))
		}
		if got := findVisits(t, s, "acme", herald.JourneyFilter{Limit: 10}); len(got) != 0 {
			t.Errorf("visits after the failed atomic batch: %v, want none", visitIDs(got))
		}

		// Sent again alone, it starts them, at the seqs the batch did not
		// take.
		res := appendBy(t, s, "acme", ingest, login(t, "in", "C1", "", t0))[0]
		wantStored(t, "login sent again", res, mark+1, t0)
		if got := findSessions(t, s, "acme", herald.JourneyFilter{Limit: 10}); len(got) != 1 || got[0].ID != res.SessionID {
			t.Errorf("sessions = %v, want [%s]", sessionIDs(got), res.SessionID)
		}
		wantSeqs(t, s, "acme", mark, []string{"in"})
	})
}

func testFindSessions(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	newAccount(t, s, "acme")
	newAccount(t, s, "globex")
	hour := func(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Hour) }
	start := func(account, id, entity string, at time.Time) string {
		t.Helper()
		r := appendOne(t, s, account, login(t, id, entity, "", at))[0]
		if r.SessionID == "" {
			t.Fatalf("login %s: no session", id)
		}
		return r.SessionID
	}
	// A (C1, open), B (C2, closed), C (C1, closed), D (no entity, open),
	// begun an hour apart in this order; G is globex's.
	a := start("acme", "a", "C1", hour(0))
	b := start("acme", "b", "C2", hour(1))
	appendOne(t, s, "acme", logout(t, "b-out", "C2", b, hour(1).Add(time.Minute)))
	c := start("acme", "c", "C1", hour(2))
	appendOne(t, s, "acme", logout(t, "c-out", "C1", c, hour(2).Add(5*time.Minute)))
	d := start("acme", "d", "", hour(3))
	g := start("globex", "a", "C1", hour(0))
	names := map[string]string{a: "A", b: "B", c: "C", d: "D", g: "G"}
	seq := map[string]int64{}
	for _, id := range []string{a, b, c, d} {
		seq[id] = findSession(t, s, "acme", id).StartSeq
	}

	all := herald.JourneyFilter{Limit: 100}
	with := variant(all)
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.JourneyFilter
		want    []string
	}{
		{"no filter", "acme", all, []string{a, b, c, d}},
		{"entity", "acme", with(func(f *herald.JourneyFilter) { f.EntityID = "C1" }), []string{a, c}},
		{"other entity", "acme", with(func(f *herald.JourneyFilter) { f.EntityID = "C2" }), []string{b}},
		{"unknown entity", "acme", with(func(f *herald.JourneyFilter) { f.EntityID = "C9" }), nil},
		{"open", "acme", with(func(f *herald.JourneyFilter) { f.State = herald.JourneyOpen }), []string{a, d}},
		{"closed", "acme", with(func(f *herald.JourneyFilter) { f.State = herald.JourneyClosed }), []string{b, c}},
		{"startedAfter is inclusive", "acme", with(func(f *herald.JourneyFilter) { f.StartedAfter = hour(1) }), []string{b, c, d}},
		{"startedBefore is exclusive", "acme", with(func(f *herald.JourneyFilter) { f.StartedBefore = hour(2) }), []string{a, b}},
		{"started range", "acme", with(func(f *herald.JourneyFilter) { f.StartedAfter, f.StartedBefore = hour(1), hour(3) }), []string{b, c}},
		{"started range in another zone", "acme", with(func(f *herald.JourneyFilter) {
			zone := time.FixedZone("UTC-3", -3*3600)
			f.StartedAfter, f.StartedBefore = hour(1).In(zone), hour(3).In(zone)
		}), []string{b, c}},
		{"afterSeq", "acme", with(func(f *herald.JourneyFilter) { f.AfterSeq = seq[a] }), []string{b, c, d}},
		{"afterSeq past the end", "acme", with(func(f *herald.JourneyFilter) { f.AfterSeq = seq[d] }), nil},
		{"limit", "acme", with(func(f *herald.JourneyFilter) { f.Limit = 2 }), []string{a, b}},
		{"limit and afterSeq page on", "acme", with(func(f *herald.JourneyFilter) { f.Limit, f.AfterSeq = 2, seq[b] }), []string{c, d}},
		{"entity and state", "acme", with(func(f *herald.JourneyFilter) { f.EntityID, f.State = "C1", herald.JourneyClosed }), []string{c}},
		{"every field", "acme", herald.JourneyFilter{
			EntityID: "C1", State: herald.JourneyClosed, StartedAfter: hour(1), StartedBefore: hour(3), AfterSeq: seq[a], Limit: 10,
		}, []string{c}},
		{"fields that match apart but not together", "acme", with(func(f *herald.JourneyFilter) {
			f.EntityID, f.State = "C2", herald.JourneyOpen
		}), nil},
		{"unknown account", "nobody", all, nil},
		{"other account", "globex", all, []string{g}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := findSessions(t, s, tc.account, tc.filter)
			if !slices.Equal(sessionIDs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("FindSessions(%s, %+v) = %v, want %v", tc.account, tc.filter, nameAll(names, sessionIDs(got)), nameAll(names, tc.want))
			}
			// A listed session is the whole record, as read alone.
			for _, l := range got {
				wantSession(t, "listed "+names[l.ID], l, findSession(t, s, tc.account, l.ID))
			}
		})
	}

	testLimitPositive(t, "FindSessions", s.FindSessions)
}

func testVisits(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	newAccount(t, s, "acme")
	newAccount(t, s, "globex")
	set := herald.DefaultSettings()
	set.Visits.Timeout = herald.Duration(10 * time.Second)
	putSettings(t, s, "acme", set)
	t0 := baseTime.Add(time.Hour)
	after := func(d time.Duration) time.Time { return t0.Add(d) }
	ingest := herald.Actor{ID: "key_ingest", Type: herald.AgentTypeAPIKey}

	// The entity's first event starts its visit.
	r1 := appendBy(t, s, "acme", ingest, page(t, "v1", "C1", "", t0))[0]
	visits := findVisits(t, s, "acme", herald.JourneyFilter{EntityID: "C1", Limit: 10})
	if len(visits) != 1 {
		t.Fatalf("visits of C1 after its first event: %v, want one", visitIDs(visits))
	}
	v1 := visits[0].ID
	want := &herald.Visit{
		ID: v1, AccountID: "acme", EntityID: "C1", StartedAt: t0, LastActivityAt: t0, ExpiresAt: after(10 * time.Second),
		EventCount: 1, FirstSeq: r1.Seq, LastSeq: r1.Seq,
	}
	wantVisit(t, "after the first event", findVisit(t, s, "acme", v1), want)
	sys := newEvents(t, s, "acme", r1.Seq)
	if !slices.Equal(kinds(sys), []string{"entity/created", "visit/started"}) {
		t.Fatalf("system events of the first event: %s; want entity created and visit started", fmtSystemEvents(sys))
	}
	started := findKind(t, sys, herald.SubjectVisit, herald.VerbStarted)
	d := wantSystemEvent(t, "visit started", started, "acme", herald.SubjectVisit, herald.VerbStarted, v1, ingest)
	wantMember(t, "visit started", d, "/entityId", "C1")
	wantMember(t, "visit started", d, "/eventId", "v1")

	// Events of the entity within the timeout, by coreCustomerId or by a
	// customer agent, join the visit; events of no entity or of another
	// do not.
	appendBy(t, s, "acme", ingest, page(t, "v2", "C1", "", after(5*time.Second)))
	r3 := appendBy(t, s, "acme", ingest, event(t, map[string]any{
		"id": "v3", "category": "web", "type": "pageViewed", "agentId": "C1", "agentType": "customer",
	}, after(8*time.Second)))[0]
	mark := lastSeq(t, s, "acme")
	appendBy(t, s, "acme", ingest, page(t, "none", "", "", after(9*time.Second)))
	if got := newEvents(t, s, "acme", mark); len(got) != 1 {
		t.Errorf("an event of no entity wrote %s; want itself only", fmtSystemEvents(got))
	}
	appendBy(t, s, "acme", ingest, page(t, "other", "C2", "", after(9*time.Second)))
	want.LastActivityAt, want.ExpiresAt, want.EventCount, want.LastSeq = after(8*time.Second), after(18*time.Second), 3, r3.Seq
	wantVisit(t, "after three events", findVisit(t, s, "acme", v1), want)

	// After a longer pause, the entity's next event ends the visit when
	// its timeout ran out, and starts another.
	r5 := appendBy(t, s, "acme", ingest, page(t, "v5", "C1", "", after(30*time.Second)))[0]
	ended := after(18 * time.Second)
	want.EndedAt, want.EndReason, want.ExpiresAt = &ended, herald.EndTimeout, time.Time{}
	wantVisit(t, "the first visit after the pause", findVisit(t, s, "acme", v1), want)
	sys = newEvents(t, s, "acme", r5.Seq)
	if len(sys) != 2 {
		t.Fatalf("the event after the pause wrote %s after it; want visit ended, visit started", fmtSystemEvents(sys))
	}
	d = wantSystemEvent(t, "visit ended", sys[0], "acme", herald.SubjectVisit, herald.VerbEnded, v1, ingest)
	wantMember(t, "visit ended", d, "/reason", herald.EndTimeout)
	wantMember(t, "visit ended", d, "/entityId", "C1")
	if !sys[0].OccurredAt.Equal(ended) || !sys[0].ReceivedAt.Equal(after(30*time.Second)) {
		t.Errorf("visit ended occurred at %s, received at %s; want %s (the timeout) and %s (the event that found it)",
			sys[0].OccurredAt, sys[0].ReceivedAt, ended, after(30*time.Second))
	}
	open := findVisits(t, s, "acme", herald.JourneyFilter{EntityID: "C1", State: herald.JourneyOpen, Limit: 10})
	if len(open) != 1 || open[0].ID == v1 {
		t.Fatalf("open visits of C1 after the pause: %v; want a new one", visitIDs(open))
	}
	v2 := open[0].ID
	wantSystemEvent(t, "second visit started", sys[1], "acme", herald.SubjectVisit, herald.VerbStarted, v2, ingest)
	wantVisit(t, "the second visit", findVisit(t, s, "acme", v2), &herald.Visit{
		ID: v2, AccountID: "acme", EntityID: "C1", StartedAt: after(30 * time.Second), LastActivityAt: after(30 * time.Second),
		ExpiresAt: after(40 * time.Second), EventCount: 1, FirstSeq: r5.Seq, LastSeq: r5.Seq,
	})

	// The timeout is the account's as it is now: C2's visit, idle past
	// the old timeout but not the new, goes on.
	set.Visits.Timeout = herald.Duration(time.Hour)
	putSettings(t, s, "acme", set)
	c2 := findVisits(t, s, "acme", herald.JourneyFilter{EntityID: "C2", Limit: 10})
	mark = lastSeq(t, s, "acme")
	r := appendBy(t, s, "acme", ingest, page(t, "other2", "C2", "", after(40*time.Second)))[0]
	if got := newEvents(t, s, "acme", mark); len(got) != 1 {
		t.Errorf("C2's event within the new timeout wrote %s; want itself only", fmtSystemEvents(got))
	}
	if len(c2) != 1 {
		t.Fatalf("visits of C2: %v, want one", visitIDs(c2))
	}
	w := c2[0].Clone()
	w.LastActivityAt, w.ExpiresAt, w.EventCount, w.LastSeq = after(40*time.Second), after(40*time.Second+time.Hour), 2, r.Seq
	wantVisit(t, "C2's visit under the new timeout", findVisit(t, s, "acme", w.ID), w)

	_, err := s.FindVisitByID(t.Context(), "globex", v1)
	wantCode(t, "FindVisitByID(another account's visit)", err, herald.ENOTFOUND)
	_, err = s.FindVisitByID(t.Context(), "acme", "nope")
	wantCode(t, "FindVisitByID(unknown)", err, herald.ENOTFOUND)
	wantAuditVerified(t, s, "acme")
}

func testFindVisits(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	newAccount(t, s, "acme")
	newAccount(t, s, "globex")
	hour := func(n int) time.Time { return baseTime.Add(time.Duration(n) * time.Hour) }
	// With the default timeout of 30 minutes: V1 (C1, ended by C1's
	// next event), V2 (C2), V3 (C1), V4 (C3), begun an hour apart.
	appendOne(t, s, "acme", page(t, "e1", "C1", "", hour(0)))
	appendOne(t, s, "acme", page(t, "e2", "C2", "", hour(1)))
	appendOne(t, s, "acme", page(t, "e3", "C1", "", hour(2)))
	appendOne(t, s, "acme", page(t, "e4", "C3", "", hour(3)))
	appendOne(t, s, "globex", page(t, "e1", "C1", "", hour(0)))

	list := findVisits(t, s, "acme", herald.JourneyFilter{Limit: 100})
	if len(list) != 4 || list[0].EntityID != "C1" || list[1].EntityID != "C2" || list[2].EntityID != "C1" || list[3].EntityID != "C3" {
		t.Fatalf("FindVisits(acme) = %v; want four visits, of C1, C2, C1 and C3 in this order", visitIDs(list))
	}
	v1, v2, v3, v4 := list[0], list[1], list[2], list[3]
	if v1.Open() || v1.EndReason != herald.EndTimeout || !v1.EndedAt.Equal(hour(0).Add(herald.DefaultVisitTimeout)) {
		t.Errorf("V1 = ended %v, reason %q; want ended by timeout at %s", v1.EndedAt, v1.EndReason, hour(0).Add(herald.DefaultVisitTimeout))
	}
	globex := findVisits(t, s, "globex", herald.JourneyFilter{Limit: 100})
	if len(globex) != 1 {
		t.Fatalf("FindVisits(globex) = %v, want one", visitIDs(globex))
	}
	g := globex[0]
	names := map[string]string{v1.ID: "V1", v2.ID: "V2", v3.ID: "V3", v4.ID: "V4", g.ID: "G"}

	all := herald.JourneyFilter{Limit: 100}
	with := variant(all)
	for _, tc := range []struct {
		name    string
		account string
		filter  herald.JourneyFilter
		want    []*herald.Visit
	}{
		{"no filter", "acme", all, []*herald.Visit{v1, v2, v3, v4}},
		{"entity", "acme", with(func(f *herald.JourneyFilter) { f.EntityID = "C1" }), []*herald.Visit{v1, v3}},
		{"unknown entity", "acme", with(func(f *herald.JourneyFilter) { f.EntityID = "C9" }), nil},
		{"open", "acme", with(func(f *herald.JourneyFilter) { f.State = herald.JourneyOpen }), []*herald.Visit{v2, v3, v4}},
		{"closed", "acme", with(func(f *herald.JourneyFilter) { f.State = herald.JourneyClosed }), []*herald.Visit{v1}},
		{"startedAfter is inclusive", "acme", with(func(f *herald.JourneyFilter) { f.StartedAfter = hour(1) }), []*herald.Visit{v2, v3, v4}},
		{"startedBefore is exclusive", "acme", with(func(f *herald.JourneyFilter) { f.StartedBefore = hour(2) }), []*herald.Visit{v1, v2}},
		{"started range", "acme", with(func(f *herald.JourneyFilter) { f.StartedAfter, f.StartedBefore = hour(1), hour(3) }), []*herald.Visit{v2, v3}},
		{"afterSeq", "acme", with(func(f *herald.JourneyFilter) { f.AfterSeq = v1.FirstSeq }), []*herald.Visit{v2, v3, v4}},
		{"afterSeq past the end", "acme", with(func(f *herald.JourneyFilter) { f.AfterSeq = v4.FirstSeq }), nil},
		{"limit", "acme", with(func(f *herald.JourneyFilter) { f.Limit = 2 }), []*herald.Visit{v1, v2}},
		{"limit and afterSeq page on", "acme", with(func(f *herald.JourneyFilter) { f.Limit, f.AfterSeq = 2, v2.FirstSeq }), []*herald.Visit{v3, v4}},
		{"entity and state", "acme", with(func(f *herald.JourneyFilter) { f.EntityID, f.State = "C1", herald.JourneyOpen }), []*herald.Visit{v3}},
		{"every field", "acme", herald.JourneyFilter{
			EntityID: "C1", State: herald.JourneyOpen, StartedAfter: hour(1), StartedBefore: hour(3), AfterSeq: v1.FirstSeq, Limit: 10,
		}, []*herald.Visit{v3}},
		{"unknown account", "nobody", all, nil},
		{"other account", "globex", all, []*herald.Visit{g}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := findVisits(t, s, tc.account, tc.filter)
			if !slices.Equal(visitIDs(got), visitIDs(tc.want)) {
				t.Fatalf("FindVisits(%s, %+v) = %v, want %v", tc.account, tc.filter, nameAll(names, visitIDs(got)), nameAll(names, visitIDs(tc.want)))
			}
			for _, v := range got {
				wantVisit(t, "listed "+names[v.ID], v, findVisit(t, s, tc.account, v.ID))
			}
		})
	}

	testLimitPositive(t, "FindVisits", s.FindVisits)
}

// testLimitPositive checks that find, FindSessions or FindVisits (name),
// refuses a limit that is not positive.
func testLimitPositive[T any](t *testing.T, name string, find func(context.Context, string, herald.JourneyFilter) ([]T, error)) {
	t.Run("limit must be positive", func(t *testing.T) {
		t.Parallel()
		for _, limit := range []int{0, -1} {
			_, err := find(t.Context(), "acme", herald.JourneyFilter{Limit: limit})
			wantCode(t, fmt.Sprintf("%s with Limit %d", name, limit), err, herald.EINVALID)
		}
	})
}

func testExpiry(t *testing.T, newDB NewDatabase) {
	t0 := baseTime.Add(time.Hour)
	after := func(d time.Duration) time.Time { return t0.Add(d) }
	ingest := herald.Actor{ID: "key_ingest", Type: herald.AgentTypeAPIKey}
	short := func() *herald.Settings {
		set := herald.DefaultSettings()
		set.Sessions.InactivityTimeout = herald.Duration(time.Minute)
		set.Sessions.MaxLength = herald.Duration(5 * time.Minute)
		set.Visits.Timeout = herald.Duration(2 * time.Minute)
		return set
	}

	t.Run("TimeoutAndMaxLength", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		putSettings(t, s, "acme", short())
		// A (C1) sees no event after its login; B (C2) one every 30
		// seconds until its maximum length; N, of no entity, logs in
		// late.
		a := appendBy(t, s, "acme", ingest, login(t, "a", "C1", "", t0))[0].SessionID
		b := appendBy(t, s, "acme", ingest, login(t, "b", "C2", "", t0))[0].SessionID
		for i := 1; i <= 9; i++ {
			appendBy(t, s, "acme", ingest, page(t, fmt.Sprintf("b%d", i), "C2", b, after(time.Duration(i)*30*time.Second)))
		}
		n := appendBy(t, s, "acme", ingest, login(t, "n", "", "", after(4*time.Minute)))[0].SessionID
		before := map[string]*herald.Session{}
		for id, expires := range map[string]time.Time{a: after(time.Minute), b: after(5 * time.Minute), n: after(5 * time.Minute)} {
			before[id] = findSession(t, s, "acme", id)
			if !before[id].Open() || !before[id].ExpiresAt.Equal(expires) {
				t.Errorf("session %s: open %t, expires at %s; want open, expiring at %s", before[id].StartEventID, before[id].Open(), before[id].ExpiresAt, expires)
			}
		}
		visitOf := func(entity string) *herald.Visit {
			t.Helper()
			list := findVisits(t, s, "acme", herald.JourneyFilter{EntityID: entity, Limit: 10})
			if len(list) != 1 {
				t.Fatalf("visits of %s: %v, want one", entity, visitIDs(list))
			}
			return list[0]
		}
		v1, v2 := visitOf("C1"), visitOf("C2")
		if !v1.ExpiresAt.Equal(after(2*time.Minute)) || !v2.ExpiresAt.Equal(after(6*time.Minute+30*time.Second)) {
			t.Errorf("visits expire at %s (C1) and %s (C2), want %s and %s",
				v1.ExpiresAt, v2.ExpiresAt, after(2*time.Minute), after(6*time.Minute+30*time.Second))
		}

		sweep := func(now time.Time, want int) []*herald.Event {
			t.Helper()
			mark := lastSeq(t, s, "acme")
			got, err := s.ExpireJourneys(t.Context(), now, 100)
			if err != nil {
				t.Fatalf("ExpireJourneys(%s): %v", now, err)
			}
			if got != want {
				t.Errorf("ExpireJourneys(%s) ended %d, want %d", now.Sub(t0), got, want)
			}
			return newEvents(t, s, "acme", mark)
		}
		if sys := sweep(after(30*time.Second), 0); len(sys) != 0 {
			t.Errorf("a sweep before anything was due wrote %s", fmtSystemEvents(sys))
		}

		// A ends when its inactivity timeout ran out, not when the sweep
		// came; C1's visit likewise.
		sys := sweep(after(3*time.Minute), 2)
		if !slices.Equal(kinds(sys), []string{"session/terminated", "visit/ended"}) {
			t.Fatalf("the sweep wrote %s; want session terminated, visit ended", fmtSystemEvents(sys))
		}
		endedA := after(time.Minute)
		want := before[a].Clone()
		want.EndedAt, want.EndReason, want.ExpiresAt = &endedA, herald.EndTimeout, time.Time{}
		wantSession(t, "A after the sweep", findSession(t, s, "acme", a), want)
		term := findKind(t, sys, herald.SubjectSession, herald.VerbTerminated)
		d := wantSystemEvent(t, "A terminated", term, "acme", herald.SubjectSession, herald.VerbTerminated, a, herald.SystemActor)
		wantMember(t, "A terminated", d, "/reason", herald.EndTimeout)
		if !term.OccurredAt.Equal(endedA) || !term.ReceivedAt.Equal(after(3*time.Minute)) {
			t.Errorf("A terminated occurred at %s, received at %s; want %s (the timeout) and %s (the sweep)",
				term.OccurredAt, term.ReceivedAt, endedA, after(3*time.Minute))
		}
		endedV1 := after(2 * time.Minute)
		wantV1 := v1.Clone()
		wantV1.EndedAt, wantV1.EndReason, wantV1.ExpiresAt = &endedV1, herald.EndTimeout, time.Time{}
		wantVisit(t, "C1's visit after the sweep", findVisit(t, s, "acme", v1.ID), wantV1)
		ve := findKind(t, sys, herald.SubjectVisit, herald.VerbEnded)
		d = wantSystemEvent(t, "C1's visit ended", ve, "acme", herald.SubjectVisit, herald.VerbEnded, v1.ID, herald.SystemActor)
		wantMember(t, "C1's visit ended", d, "/reason", herald.EndTimeout)
		if !ve.OccurredAt.Equal(endedV1) {
			t.Errorf("C1's visit ended occurred at %s, want %s", ve.OccurredAt, endedV1)
		}
		for _, id := range []string{b, n} {
			wantSession(t, "session not due yet", findSession(t, s, "acme", id), before[id])
		}
		wantVisit(t, "C2's visit, not due yet", findVisit(t, s, "acme", v2.ID), v2)

		// Nothing is ended twice.
		if sys := sweep(after(3*time.Minute), 0); len(sys) != 0 {
			t.Errorf("the same sweep again wrote %s", fmtSystemEvents(sys))
		}

		// B reaches its maximum length though it was active; N times out.
		sys = sweep(after(10*time.Minute), 3)
		if !slices.Equal(kinds(sys), []string{"session/terminated", "session/terminated", "visit/ended"}) {
			t.Fatalf("the second sweep wrote %s; want two sessions terminated, a visit ended", fmtSystemEvents(sys))
		}
		for _, c := range []struct {
			id, reason string
			at         time.Time
		}{{b, herald.EndMaxLength, after(5 * time.Minute)}, {n, herald.EndTimeout, after(5 * time.Minute)}} {
			want := before[c.id].Clone()
			want.EndedAt, want.EndReason, want.ExpiresAt = &c.at, c.reason, time.Time{}
			wantSession(t, "session "+want.StartEventID+" after the second sweep", findSession(t, s, "acme", c.id), want)
			for _, e := range sys {
				if e.PrimaryID == c.id {
					wantMember(t, "session "+want.StartEventID+" terminated", dataOf(t, e), "/reason", c.reason)
				}
			}
		}
		endedV2 := after(6*time.Minute + 30*time.Second)
		wantV2 := v2.Clone()
		wantV2.EndedAt, wantV2.EndReason, wantV2.ExpiresAt = &endedV2, herald.EndTimeout, time.Time{}
		wantVisit(t, "C2's visit after the second sweep", findVisit(t, s, "acme", v2.ID), wantV2)
		for _, at := range []time.Duration{10 * time.Minute, 24 * time.Hour} {
			if sys := sweep(after(at), 0); len(sys) != 0 {
				t.Errorf("a sweep with nothing open wrote %s", fmtSystemEvents(sys))
			}
		}

		// An event of a swept session is flagged; the entity's next event
		// starts a new visit, and ends none.
		res := appendBy(t, s, "acme", ingest, page(t, "late", "C1", a, after(11*time.Minute)))[0]
		wantFlags(t, "event of a swept session", s, "acme", res, "late", herald.FlagSessionEnded)
		if sys := newEvents(t, s, "acme", res.Seq); !slices.Equal(kinds(sys), []string{"visit/started"}) {
			t.Errorf("C1's event after the sweep wrote %s; want visit started", fmtSystemEvents(sys))
		}
		wantAuditVerified(t, s, "acme")
	})

	t.Run("JourneyEventsOff", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		set := short()
		set.JourneyEvents = herald.JourneyEvents{VisitEnded: true}
		putSettings(t, s, "acme", set)
		id := appendBy(t, s, "acme", ingest, login(t, "in", "C1", "", t0))[0].SessionID
		mark := lastSeq(t, s, "acme")
		// By the account's timeouts both are due; by the defaults, neither.
		n, err := s.ExpireJourneys(t.Context(), after(3*time.Minute), 100)
		if err != nil || n != 2 {
			t.Fatalf("ExpireJourneys = %d, %v; want the session and the visit ended", n, err)
		}
		if sys := newEvents(t, s, "acme", mark); !slices.Equal(kinds(sys), []string{"visit/ended"}) {
			t.Errorf("the sweep wrote %s; want visit ended only: session terminated is switched off", fmtSystemEvents(sys))
		}
		if got := findSession(t, s, "acme", id); got.Open() || got.EndReason != herald.EndTimeout || !got.EndedAt.Equal(after(time.Minute)) {
			t.Errorf("session after the sweep: ended %v, reason %q; want ended by timeout at %s", got.EndedAt, got.EndReason, after(time.Minute))
		}
		if got := findVisits(t, s, "acme", herald.JourneyFilter{State: herald.JourneyOpen, Limit: 10}); len(got) != 0 {
			t.Errorf("open visits after the sweep: %v, want none", visitIDs(got))
		}
		wantAuditVerified(t, s, "acme")
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		s := newDB(t)()
		newAccount(t, s, "acme")
		putSettings(t, s, "acme", short())
		const logins = 5
		for i := range logins {
			appendOne(t, s, "acme", login(t, fmt.Sprintf("in%d", i), fmt.Sprintf("C%d", i), "", t0))
		}
		const limit = 3
		total := 0
		for call := 1; ; call++ {
			if call > 4*logins {
				t.Fatalf("after %d calls, ExpireJourneys still ends some", call)
			}
			n, err := s.ExpireJourneys(t.Context(), after(time.Hour), limit)
			if err != nil {
				t.Fatalf("ExpireJourneys: %v", err)
			}
			if n > limit {
				t.Errorf("ExpireJourneys with limit %d ended %d", limit, n)
			}
			if n == 0 {
				break
			}
			total += n
		}
		if total != 2*logins {
			t.Errorf("the sweeps ended %d in all, want %d sessions and visits", total, 2*logins)
		}
		if got := findSessions(t, s, "acme", herald.JourneyFilter{State: herald.JourneyOpen, Limit: 100}); len(got) != 0 {
			t.Errorf("open sessions after the sweeps: %v", sessionIDs(got))
		}
		if got := findVisits(t, s, "acme", herald.JourneyFilter{State: herald.JourneyOpen, Limit: 100}); len(got) != 0 {
			t.Errorf("open visits after the sweeps: %v", visitIDs(got))
		}
		wantEndedOnce(t, s, "acme", logins, logins)
	})

	t.Run("TwoNodes", func(t *testing.T) {
		t.Parallel()
		open := newDB(t)
		nodes := []Store{open(), open()}
		accounts := []string{"acme", "globex"}
		const perAccount = 25
		for i, account := range accounts {
			newAccount(t, nodes[i], account)
			var events []*herald.Event
			for j := range perAccount {
				events = append(events, login(t, fmt.Sprintf("in%d", j), fmt.Sprintf("C%d", j), "", t0))
			}
			appendOne(t, nodes[0], account, events...)
		}

		// Two sweepers on each node, with a small limit, so that they
		// contend for the same sessions and visits.
		var ended atomic.Int64
		sweepers := make([]func(context.Context) error, 4)
		for i := range sweepers {
			node := nodes[i%len(nodes)]
			sweepers[i] = func(ctx context.Context) error {
				for {
					n, err := node.ExpireJourneys(ctx, after(time.Hour), 7)
					if err != nil {
						return err
					}
					if n == 0 {
						return nil
					}
					ended.Add(int64(n))
				}
			}
		}
		runConcurrently(t, sweepers)
		// A sweeper stops when it finds nothing left to end: all it found
		// was ended by another. Whatever is left, a last sweep ends.
		for range 10 {
			n, err := nodes[1].ExpireJourneys(t.Context(), after(time.Hour), 1000)
			if err != nil {
				t.Fatalf("ExpireJourneys: %v", err)
			}
			if n == 0 {
				break
			}
			ended.Add(int64(n))
		}
		if want := int64(len(accounts) * 2 * perAccount); ended.Load() != want {
			t.Errorf("the sweepers ended %d, want %d: each session and visit once", ended.Load(), want)
		}
		for _, account := range accounts {
			wantEndedOnce(t, nodes[0], account, perAccount, perAccount)
			storedEvents(t, nodes[1], account, 0, int(lastSeq(t, nodes[1], account)))
			wantAuditVerified(t, nodes[1], account)
		}
	})

	// A sweep that found a session due, but locks the account after an
	// event kept it alive, must leave it alone: the store must decide on
	// the session as it is once it holds the lock.
	t.Run("SweepRacesAppend", func(t *testing.T) {
		t.Parallel()
		open := newDB(t)
		nodes := []Store{open(), open()}
		newAccount(t, nodes[0], "acme")
		putSettings(t, nodes[0], "acme", short())
		const n = 40
		logins := make([]*herald.Event, n)
		for i := range logins {
			logins[i] = login(t, fmt.Sprintf("in%d", i), "", "", t0)
		}
		res := appendOne(t, nodes[0], "acme", logins...)
		sessions := make([]string, n)
		calls := make([][]*herald.AppendBatch, n)
		for i, r := range res {
			sessions[i] = r.SessionID
			// Received before the session's timeout ran out, at a minute.
			calls[i] = []*herald.AppendBatch{{AccountID: "acme", Events: []*herald.Event{
				page(t, fmt.Sprintf("keep%d", i), "", r.SessionID, after(50*time.Second)),
			}}}
		}
		writer := &raceWriter{name: "keep-alive writer", node: nodes[0], calls: calls}
		var swept atomic.Int64
		var writerDone atomic.Bool
		runConcurrently(t, []func(context.Context) error{
			func(ctx context.Context) error {
				defer writerDone.Store(true)
				return writer.run(ctx)
			},
			func(ctx context.Context) error {
				// The sweep's now is after the keep-alives were received:
				// a session either ended at a minute, before its
				// keep-alive was stored, or was kept alive by it.
				for {
					done := writerDone.Load()
					k, err := nodes[1].ExpireJourneys(ctx, after(90*time.Second), 1)
					if err != nil {
						return err
					}
					swept.Add(int64(k))
					if done && k == 0 {
						return nil
					}
				}
			},
		})

		var kept int64
		for i, id := range sessions {
			got := findSession(t, nodes[1], "acme", id)
			keep := findEvent(t, nodes[1], "acme", fmt.Sprintf("keep%d", i))
			r := calls[i][0].Results[0]
			if got.Open() {
				kept++
				if got.EventCount != 2 || !got.LastActivityAt.Equal(after(50*time.Second)) || !got.ExpiresAt.Equal(after(110*time.Second)) ||
					len(keep.Flags) != 0 || len(r.Flags) != 0 {
					t.Errorf("session %d, kept alive: %d events, last active %s, expires %s, keep-alive flags %q; "+
						"want 2 events, active at 50s, expiring at 110s, no flags", i, got.EventCount,
						got.LastActivityAt.Sub(t0), got.ExpiresAt.Sub(t0), keep.Flags)
				}
				continue
			}
			if got.EventCount != 1 || got.EndReason != herald.EndTimeout || !got.EndedAt.Equal(after(time.Minute)) ||
				!slices.Equal(keep.Flags, []string{herald.FlagSessionEnded}) || !slices.Equal(r.Flags, keep.Flags) {
				t.Errorf("session %d, swept: %d events, ended %v (%s), keep-alive flags %q (result %q); "+
					"want 1 event, ended at a minute by timeout, its keep-alive flagged %s",
					i, got.EventCount, got.EndedAt, got.EndReason, keep.Flags, r.Flags, herald.FlagSessionEnded)
			}
		}
		t.Logf("%d sessions swept, %d kept alive", n-kept, kept)
		if swept.Load() != n-kept {
			t.Errorf("the sweeps say they ended %d sessions; %d are ended", swept.Load(), n-kept)
		}
		wantEndedOnce(t, nodes[0], "acme", int(n-kept), 0)
		storedEvents(t, nodes[1], "acme", 0, int(lastSeq(t, nodes[1], "acme")))
		wantAuditVerified(t, nodes[1], "acme")
	})
}

// wantEndedOnce checks that the account has sessions ended sessions
// terminated and visits visits ended, each by one system event, and the
// sessions and visits the store holds as ended agree.
func wantEndedOnce(t *testing.T, s Store, accountID string, sessions, visits int) {
	t.Helper()
	count := map[string]int{}
	for _, e := range allEvents(t, s, accountID, herald.EventFilter{
		Origin: herald.OriginSystem, Types: []string{herald.VerbTerminated, herald.VerbEnded},
	}) {
		count[e.Category+" "+e.PrimaryID]++
	}
	for _, c := range []struct {
		subject string
		ended   []string
		want    int
	}{
		{herald.SubjectSession, sessionIDs(findSessions(t, s, accountID, herald.JourneyFilter{State: herald.JourneyClosed, Limit: 1000})), sessions},
		{herald.SubjectVisit, visitIDs(findVisits(t, s, accountID, herald.JourneyFilter{State: herald.JourneyClosed, Limit: 1000})), visits},
	} {
		if len(c.ended) != c.want {
			t.Errorf("%s: %d %ss ended, want %d", accountID, len(c.ended), c.subject, c.want)
		}
		for _, id := range c.ended {
			if n := count[c.subject+" "+id]; n != 1 {
				t.Errorf("%s: %s %s ended with %d system events, want 1", accountID, c.subject, id, n)
			}
			delete(count, c.subject+" "+id)
		}
	}
	for k, n := range count {
		t.Errorf("%s: %d system events end %s, which is not ended", accountID, n, k)
	}
}

// runConcurrently runs each function in a goroutine of its own and waits
// for them, failing the test with the errors they return. Functions still
// running at raceDeadline have their context cancelled.
func runConcurrently(t *testing.T, funcs []func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), raceDeadline)
	defer cancel()
	errs := make([]error, len(funcs))
	var wg sync.WaitGroup
	for i, f := range funcs {
		wg.Go(func() { errs[i] = f(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil && t.Context().Err() == nil {
		t.Errorf("not done after %s (deadlocked?)", raceDeadline)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// journeyEvent is an event of category/typ received at at, of entity and
// in session when they are not empty. It has no occurredAt, which takes
// at: sent again later, it has the same content.
func journeyEvent(t *testing.T, id, category, typ, entity, session string, at time.Time) *herald.Event {
	t.Helper()
	f := map[string]any{"id": id, "category": category, "type": typ}
	if entity != "" {
		f["coreCustomerId"] = entity
	}
	if session != "" {
		f["sessionId"] = session
	}
	return event(t, f, at)
}

// login, logout and page are journeyEvent of the default login and logout
// types, and of a type that is neither.
func login(t *testing.T, id, entity, session string, at time.Time) *herald.Event {
	t.Helper()
	return journeyEvent(t, id, "authentication", "userLoggedIn", entity, session, at)
}

func logout(t *testing.T, id, entity, session string, at time.Time) *herald.Event {
	t.Helper()
	return journeyEvent(t, id, "authentication", "userLoggedOut", entity, session, at)
}

func page(t *testing.T, id, entity, session string, at time.Time) *herald.Event {
	t.Helper()
	return journeyEvent(t, id, "web", "pageViewed", entity, session, at)
}

// appendBy stores events as one batch sent by the actor by, and returns
// its results.
func appendBy(t *testing.T, s herald.EventService, accountID string, by herald.Actor, events ...*herald.Event) []herald.AppendResult {
	t.Helper()
	b := &herald.AppendBatch{AccountID: accountID, Events: events, By: by}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	if len(b.Results) != len(events) {
		t.Fatalf("AppendEvents: %d results for %d events", len(b.Results), len(events))
	}
	return b.Results
}

func putSettings(t *testing.T, s herald.SettingsService, accountID string, set *herald.Settings) {
	t.Helper()
	if err := set.Validate(); err != nil {
		t.Fatalf("the case's settings are not valid: %v", err)
	}
	if err := s.PutSettings(t.Context(), accountID, set); err != nil {
		t.Fatalf("PutSettings(%s): %v", accountID, err)
	}
}

// newEvents returns the account's events after seq.
func newEvents(t *testing.T, s herald.EventService, accountID string, seq int64) []*herald.Event {
	t.Helper()
	return allEvents(t, s, accountID, herald.EventFilter{AfterSeq: seq})
}

// kinds returns the "category/type" of each event, sorted.
func kinds(events []*herald.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Category + "/" + e.Type
	}
	slices.Sort(out)
	return out
}

// findKind returns the first of events of category/typ.
func findKind(t *testing.T, events []*herald.Event, category, typ string) *herald.Event {
	t.Helper()
	for _, e := range events {
		if e.Category == category && e.Type == typ {
			return e
		}
	}
	t.Fatalf("no %s/%s event among %s", category, typ, fmtSystemEvents(events))
	return nil
}

func findEvent(t *testing.T, s herald.EventService, accountID, id string) *herald.Event {
	t.Helper()
	e, err := s.FindEventByID(t.Context(), accountID, id)
	return must(t, e, err, "FindEventByID(%s, %s)", accountID, id)
}

// wantFlags checks that the event id was stored with these flags, and
// that its result said so.
func wantFlags(t *testing.T, what string, s herald.EventService, accountID string, r herald.AppendResult, id string, flags ...string) {
	t.Helper()
	if r.Err != nil || r.Duplicate || r.Seq == 0 || !slices.Equal(r.Flags, flags) {
		t.Errorf("%s: got %s with flags %q, want stored with flags %q", what, fmtResult(r), r.Flags, flags)
	}
	e := findEvent(t, s, accountID, id)
	if !slices.Equal(e.Flags, flags) || !bytes.Contains(e.Body, []byte(`"flags":["`+strings.Join(flags, `","`)+`"]`)) {
		t.Errorf("%s: stored with flags %q, body %s; want flags %q", what, e.Flags, e.Body, flags)
	}
}

func findSession(t *testing.T, s herald.SessionService, accountID, id string) *herald.Session {
	t.Helper()
	got, err := s.FindSessionByID(t.Context(), accountID, id)
	return must(t, got, err, "FindSessionByID(%s, %s)", accountID, id)
}

func findSessions(t *testing.T, s herald.SessionService, accountID string, f herald.JourneyFilter) []*herald.Session {
	t.Helper()
	got, err := s.FindSessions(t.Context(), accountID, f)
	return must(t, got, err, "FindSessions(%s, %+v)", accountID, f)
}

func findVisit(t *testing.T, s herald.VisitService, accountID, id string) *herald.Visit {
	t.Helper()
	got, err := s.FindVisitByID(t.Context(), accountID, id)
	return must(t, got, err, "FindVisitByID(%s, %s)", accountID, id)
}

func findVisits(t *testing.T, s herald.VisitService, accountID string, f herald.JourneyFilter) []*herald.Visit {
	t.Helper()
	got, err := s.FindVisits(t.Context(), accountID, f)
	return must(t, got, err, "FindVisits(%s, %+v)", accountID, f)
}

// wantSession checks that got holds every field of want.
func wantSession(t *testing.T, what string, got, want *herald.Session) {
	t.Helper()
	fields := func(s *herald.Session) journeyFields {
		return journeyFields{s.ID, s.AccountID, s.EntityID, s.StartedAt, s.LastActivityAt, s.EndedAt, s.EndReason, s.ExpiresAt,
			s.EventCount, fmt.Sprintf("%s, %d…%d", s.StartEventID, s.StartSeq, s.LastSeq)}
	}
	wantJourney(t, what, "session", "start event and seqs", fields(got), fields(want))
}

// wantVisit checks that got holds every field of want.
func wantVisit(t *testing.T, what string, got, want *herald.Visit) {
	t.Helper()
	fields := func(v *herald.Visit) journeyFields {
		return journeyFields{v.ID, v.AccountID, v.EntityID, v.StartedAt, v.LastActivityAt, v.EndedAt, v.EndReason, v.ExpiresAt,
			v.EventCount, fmt.Sprintf("%d…%d", v.FirstSeq, v.LastSeq)}
	}
	wantJourney(t, what, "visit", "seqs", fields(got), fields(want))
}

// journeyFields are the fields of a session or a visit, those of their
// own (a session's start event, and the seqs) formatted as seqs.
type journeyFields struct {
	ID, AccountID, EntityID   string
	StartedAt, LastActivityAt time.Time
	EndedAt                   *time.Time
	EndReason                 string
	ExpiresAt                 time.Time
	EventCount                int64
	seqs                      string
}

// wantJourney checks that got, a session or visit (noun), holds every
// field of want; seqsName names their seqs in a difference.
func wantJourney(t *testing.T, what, noun, seqsName string, got, want journeyFields) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s = %v, want %v", field, g, w))
	}
	if got.ID != want.ID || got.AccountID != want.AccountID {
		diff("account and id", got.AccountID+" "+got.ID, want.AccountID+" "+want.ID)
	}
	if got.EntityID != want.EntityID {
		diff("EntityID", got.EntityID, want.EntityID)
	}
	if !got.StartedAt.Equal(want.StartedAt) || !got.LastActivityAt.Equal(want.LastActivityAt) {
		diff("started and last active", fmtRange(got.StartedAt, got.LastActivityAt), fmtRange(want.StartedAt, want.LastActivityAt))
	}
	if !sameEnd(got.EndedAt, want.EndedAt) || got.EndReason != want.EndReason {
		diff("ended", fmtEnd(got.EndedAt, got.EndReason), fmtEnd(want.EndedAt, want.EndReason))
	}
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		diff("ExpiresAt", got.ExpiresAt, want.ExpiresAt)
	}
	if got.EventCount != want.EventCount {
		diff("EventCount", got.EventCount, want.EventCount)
	}
	if got.seqs != want.seqs {
		diff(seqsName, got.seqs, want.seqs)
	}
	if len(diffs) > 0 {
		t.Errorf("%s: %s %s:\n\t%s", what, noun, want.ID, strings.Join(diffs, "\n\t"))
	}
}

func sameEnd(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}

func fmtEnd(at *time.Time, reason string) string {
	if at == nil {
		return "open" + reason
	}
	return at.UTC().Format(time.RFC3339Nano) + " (" + reason + ")"
}

func sessionIDs(list []*herald.Session) []string {
	return idsOf(list, func(s *herald.Session) string { return s.ID })
}

func visitIDs(list []*herald.Visit) []string {
	return idsOf(list, func(v *herald.Visit) string { return v.ID })
}

// nameAll replaces the ids in list by the names a case gave them.
func nameAll(names map[string]string, list []string) []string {
	out := make([]string, len(list))
	for i, id := range list {
		if n, ok := names[id]; ok {
			out[i] = n
		} else {
			out[i] = id
		}
	}
	return out
}

// testJourneysFromTwoNodes has writers on two nodes append, at once, the
// events of a few sessions and of a few entities seen for the first time,
// some events sent by both nodes. A store that reads a session or an
// entity's open visit before it holds the account's lock loses counts, or
// starts two visits (and two profiles) for one new entity. Each session
// and visit must count exactly its stored events, and each entity have
// one visit, begun by one system event.
func testJourneysFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	newAccount(t, nodes[0], "acme")
	t0 := baseTime.Add(time.Hour)

	const (
		numSessions    = 6
		numEntities    = 4
		numEvents      = 240
		writersPerNode = 4
		resendEvery    = 5 // one event in 5 is sent by both nodes
	)
	sessions := make([]string, numSessions)
	for i := range sessions {
		sessions[i] = appendOne(t, nodes[0], "acme", login(t, fmt.Sprintf("in%d", i), "", "", t0))[0].SessionID
	}
	inOrder := make([]int, numEvents)
	for i := range inOrder {
		inOrder[i] = i
	}
	sends := dealSends(inOrder, len(nodes)*writersPerNode, writersPerNode, resendEvery)
	var writers []*raceWriter
	for w, list := range sends {
		n := w / writersPerNode
		var events []*herald.Event
		for _, i := range list {
			// The nodes receive a minute apart: well within the timeouts.
			at := t0.Add(time.Duration(n+1) * time.Minute)
			events = append(events, page(t, fmt.Sprintf("ev-%03d", i), fmt.Sprintf("C%d", i%numEntities), sessions[i%numSessions], at))
		}
		writers = append(writers, &raceWriter{
			name:  fmt.Sprintf("node %d writer %d", n, w%writersPerNode),
			node:  nodes[n],
			calls: cutCalls("acme", events, []int{1, 3, 5}),
		})
	}

	runWriters(t, writers)

	stored := storedEvents(t, nodes[1], "acme", 0, int(lastSeq(t, nodes[1], "acme")))
	all := slices.SortedFunc(maps.Values(stored), func(a, b *herald.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	type tally struct {
		count    int64
		first    int64
		last     int64
		lastSeen time.Time
	}
	bySession, byEntity := map[string]*tally{}, map[string]*tally{}
	add := func(m map[string]*tally, key string, e *herald.Event) {
		c := m[key]
		if c == nil {
			c = &tally{first: e.Seq}
			m[key] = c
		}
		c.count++
		c.last = max(c.last, e.Seq)
		if e.ReceivedAt.After(c.lastSeen) {
			c.lastSeen = e.ReceivedAt
		}
	}
	started := map[string]int{}
	for _, e := range all {
		if e.Origin == herald.OriginSystem {
			started[e.Category+"/"+e.Type]++
			continue
		}
		if len(e.Flags) != 0 {
			t.Errorf("event %s stored with flags %q, want none", e.ID, e.Flags)
		}
		if e.SessionID != "" {
			add(bySession, e.SessionID, e)
		}
		if id := e.EntityID(); id != "" {
			add(byEntity, id, e)
		}
	}
	if want := map[string]int{
		"account/created": 1, "apikey/created": 1,
		"session/started": numSessions, "entity/created": numEntities, "visit/started": numEntities,
	}; !maps.Equal(started, want) {
		t.Errorf("system events: %v; want %v", started, want)
	}
	for _, id := range sessions {
		got, want := findSession(t, nodes[0], "acme", id), bySession[id]
		if got.EventCount != want.count || got.LastSeq != want.last || !got.LastActivityAt.Equal(want.lastSeen) || !got.Open() {
			t.Errorf("session %s: %d events, last seq %d, last active %s, open %t; its stored events say %d, %d, %s, open: updates were lost",
				got.StartEventID, got.EventCount, got.LastSeq, got.LastActivityAt, got.Open(), want.count, want.last, want.lastSeen)
		}
	}
	for entity, want := range byEntity {
		visits := findVisits(t, nodes[0], "acme", herald.JourneyFilter{EntityID: entity, Limit: 10})
		if len(visits) != 1 {
			t.Errorf("entity %s has %d visits, want one", entity, len(visits))
			continue
		}
		v := visits[0]
		if v.EventCount != want.count || v.FirstSeq != want.first || v.LastSeq != want.last || !v.LastActivityAt.Equal(want.lastSeen) || !v.Open() {
			t.Errorf("visit of %s: %d events, seqs %d…%d, last active %s, open %t; its stored events say %d, %d…%d, %s, open: updates were lost",
				entity, v.EventCount, v.FirstSeq, v.LastSeq, v.LastActivityAt, v.Open(), want.count, want.first, want.last, want.lastSeen)
		}
		if p := findProfile(t, nodes[0], "acme", entity); p.EventCount != want.count {
			t.Errorf("profile %s counts %d events, want %d", entity, p.EventCount, want.count)
		}
	}
	wantAuditVerified(t, nodes[1], "acme")
}
