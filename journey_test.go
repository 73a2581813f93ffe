package herald_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// journeyEvent returns a new client event of the given type, received at
// t0 plus at.
func journeyEvent(id, category, typ, entity, session string, at time.Duration) *herald.Event {
	e := &herald.Event{
		ID: id, Category: category, Type: typ, CoreCustomerID: entity, SessionID: session,
		OccurredAt: t0.Add(at), ReceivedAt: t0.Add(at), Origin: herald.OriginAPI, Hash: "h-" + id,
	}
	return e
}

// journeyState is a fresh account acme with default settings, after seq 10.
func journeyState() *herald.AppendState {
	return &herald.AppendState{LastSeq: map[string]int64{"acme": 10}}
}

// kinds lists the plan's events as "category/type" (api events by id).
func kinds(plan *herald.AppendPlan) []string {
	var out []string
	for _, e := range plan.Events {
		if e.Origin == herald.OriginSystem {
			out = append(out, e.Category+" "+e.Type)
		} else {
			out = append(out, e.ID)
		}
	}
	return out
}

// carry moves what plan wrote into st, as a store would, for the next call.
func carry(st *herald.AppendState, plan *herald.AppendPlan) {
	for a, s := range plan.LastSeq {
		st.LastSeq[a] = s
	}
	if st.AuditHead == nil {
		st.AuditHead = map[string]string{}
	}
	for a, h := range plan.AuditHead {
		st.AuditHead[a] = h
	}
}

func TestJourneyLoginEventsLogout(t *testing.T) {
	st := journeyState()
	login := journeyEvent("login", "authentication", "userLoggedIn", "CUS1", "", 0)
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{login}, By: herald.Actor{ID: "key-1", Type: "apikey"}}
	plan, err := herald.PlanAppend([]*herald.AppendBatch{b}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	sid := b.Results[0].SessionID
	if sid == "" || login.SessionID != sid {
		t.Fatalf("session id: result %q, event %q", sid, login.SessionID)
	}
	want := []string{"login", "entity created", "visit started", "session started"}
	if got := kinds(plan); !slices.Equal(got, want) {
		t.Fatalf("plan events = %v, want %v", got, want)
	}
	for i, e := range plan.Events {
		if e.Seq != int64(11+i) {
			t.Errorf("event %d seq %d, want %d", i, e.Seq, 11+i)
		}
		if e.Origin == herald.OriginSystem && (e.AgentID != "key-1" || e.AgentType != "apikey" || e.ChainHash == "") {
			t.Errorf("system event %d: agent %s/%s hash %q", i, e.AgentID, e.AgentType, e.ChainHash)
		}
	}
	var data map[string]any
	if err := json.Unmarshal(plan.Events[3].Data, &data); err != nil {
		t.Fatal(err)
	}
	if data["subject_type"] != "session" || data["subject_id"] != sid || data["verb"] != "started" || data["aid"] != "acme" {
		t.Errorf("session started data = %v", data)
	}
	if len(plan.Sessions) != 1 || plan.Sessions[0].EventCount != 1 || !plan.Sessions[0].ExpiresAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("sessions = %+v", plan.Sessions)
	}
	carry(st, plan)

	// A click in the session, then the logout.
	click := journeyEvent("click", "web", "click", "CUS1", sid, time.Minute)
	logout := journeyEvent("logout", "authentication", "userLoggedOut", "CUS1", sid, 2*time.Minute)
	b = &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{click, logout}}
	plan, err = herald.PlanAppend([]*herald.AppendBatch{b}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"click", "logout", "session ended"}; !slices.Equal(kinds(plan), want) {
		t.Fatalf("plan events = %v, want %v", kinds(plan), want)
	}
	s := st.Sessions[herald.Ref{AccountID: "acme", ID: sid}]
	if s.Open() || s.EndReason != herald.EndLogout || !s.EndedAt.Equal(t0.Add(2*time.Minute)) || s.EventCount != 3 {
		t.Fatalf("session = %+v", s)
	}
	if plan.Events[2].AgentID != "system" {
		t.Errorf("session ended by %s, want system (no key given)", plan.Events[2].AgentID)
	}
	carry(st, plan)

	// After the logout the session id is ended: flagged, stored.
	late := journeyEvent("late", "web", "click", "CUS1", sid, 3*time.Minute)
	unknown := journeyEvent("unknown", "web", "click", "CUS1", "no-such-session", 3*time.Minute)
	b = &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{late, unknown}}
	if _, err := herald.PlanAppend([]*herald.AppendBatch{b}, st, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(late.Flags, []string{herald.FlagSessionEnded}) || !slices.Equal(unknown.Flags, []string{herald.FlagSessionUnknown}) {
		t.Errorf("flags: late %v, unknown %v", late.Flags, unknown.Flags)
	}
	if b.Results[0].Err != nil || b.Results[1].Err != nil {
		t.Errorf("results = %+v", b.Results)
	}
}

func TestJourneyTimeouts(t *testing.T) {
	st := journeyState()
	set := herald.DefaultSettings()
	set.Sessions.InactivityTimeout = herald.Duration(10 * time.Minute)
	set.Sessions.MaxLength = herald.Duration(time.Hour)
	set.Visits.Timeout = herald.Duration(20 * time.Minute)
	st.Settings = map[string]*herald.Settings{"acme": set}

	login := journeyEvent("login", "authentication", "userLoggedIn", "CUS1", "s-1", 0)
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{login}}
	plan, err := herald.PlanAppend([]*herald.AppendBatch{b}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	carry(st, plan)

	// Keep the session alive every 9 minutes: max length ends it at 1 h.
	at := time.Duration(0)
	for i := range 6 {
		at += 9 * time.Minute
		e := journeyEvent(fmt.Sprint("e", i), "web", "click", "CUS1", "s-1", at)
		b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{e}}
		plan, err := herald.PlanAppend([]*herald.AppendBatch{b}, st, nil)
		if err != nil || len(plan.Events) != 1 {
			t.Fatalf("event at %s: %v, %v", at, err, kinds(plan))
		}
		carry(st, plan)
	}
	// Nothing is due 59 minutes in; at 61 minutes the session has run
	// its length.
	plan, err = herald.PlanExpiry(st, t0.Add(59*time.Minute))
	if err != nil || len(plan.Events) != 0 {
		t.Fatalf("sweep at 59m: %v, %v", err, kinds(plan))
	}
	plan, err = herald.PlanExpiry(st, t0.Add(61*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"session terminated"}; !slices.Equal(kinds(plan), want) {
		t.Fatalf("sweep at 61m = %v, want %v", kinds(plan), want)
	}
	s := plan.Sessions[0]
	if s.EndReason != herald.EndMaxLength || !s.EndedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("session = %+v", s)
	}
	if e := plan.Events[0]; !e.OccurredAt.Equal(t0.Add(time.Hour)) || !e.ReceivedAt.Equal(t0.Add(61*time.Minute)) || e.AgentID != "system" {
		t.Errorf("terminated event: occurred %s received %s agent %s", e.OccurredAt, e.ReceivedAt, e.AgentID)
	}
	carry(st, plan)

	// The visit ends 20 minutes after the last event (54 m).
	plan, err = herald.PlanExpiry(st, t0.Add(75*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"visit ended"}; !slices.Equal(kinds(plan), want) {
		t.Fatalf("sweep at 75m = %v, want %v", kinds(plan), want)
	}
	if v := plan.Visits[0]; v.EndReason != herald.EndTimeout || !v.EndedAt.Equal(t0.Add(74*time.Minute)) || v.EventCount != 7 {
		t.Errorf("visit = %+v", v)
	}
	carry(st, plan)

	// The next event of CUS1 starts a new visit (no second profile).
	e := journeyEvent("again", "web", "click", "CUS1", "", 2*time.Hour)
	plan, err = herald.PlanAppend([]*herald.AppendBatch{{AccountID: "acme", Events: []*herald.Event{e}}}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"again", "visit started"}; !slices.Equal(kinds(plan), want) {
		t.Errorf("after the visit = %v, want %v", kinds(plan), want)
	}
}

func TestJourneyEventsSwitchedOff(t *testing.T) {
	st := journeyState()
	st.Settings = map[string]*herald.Settings{"acme": quiet()}
	login := journeyEvent("login", "authentication", "userLoggedIn", "CUS1", "", 0)
	plan, err := herald.PlanAppend([]*herald.AppendBatch{{AccountID: "acme", Events: []*herald.Event{login}}}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"login"}; !slices.Equal(kinds(plan), want) || len(plan.Sessions) != 1 || len(plan.Visits) != 1 {
		t.Errorf("plan = %v, %d sessions, %d visits", kinds(plan), len(plan.Sessions), len(plan.Visits))
	}
}

func TestJourneyAtomicUndo(t *testing.T) {
	txn := builtin(t, "transactions/transaction")
	st := journeyState()
	login := journeyEvent("login", "authentication", "userLoggedIn", "CUS1", "", 0)
	ok, bad := fresh("ok", "approved", 0, txn), fresh("bad", "pending", time.Second, txn) // may not follow approved
	ok.ReceivedAt, bad.ReceivedAt = t0, t0
	atomic := &herald.AppendBatch{AccountID: "acme", Atomic: true, Events: []*herald.Event{login, ok, bad}}
	plan, err := herald.PlanAppend([]*herald.AppendBatch{atomic}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Events) != 0 || len(plan.Sessions) != 0 || len(plan.Visits) != 0 || len(plan.Profiles) != 0 || len(plan.AuditHead) != 0 {
		t.Errorf("plan after a failed atomic batch = %v, %d sessions, %d visits, %d profiles, heads %v",
			kinds(plan), len(plan.Sessions), len(plan.Visits), len(plan.Profiles), plan.AuditHead)
	}
}

func TestAuditChain(t *testing.T) {
	st := journeyState()
	var rows []herald.AuditRow
	for i := range 3 {
		e := journeyEvent(fmt.Sprint("e", i), "web", "click", fmt.Sprint("CUS", i), "", time.Duration(i)*time.Second)
		plan, err := herald.PlanAppend([]*herald.AppendBatch{{AccountID: "acme", Events: []*herald.Event{e}}}, st, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range plan.Events {
			if e.Origin != herald.OriginSystem {
				continue
			}
			body, err := herald.MarshalEvent(e)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, herald.AuditRow{Seq: e.Seq, ID: e.ID, Category: e.Category, Type: e.Type, PrimaryID: e.PrimaryID, Body: body})
		}
		carry(st, plan)
	}
	verify := func(rows []herald.AuditRow, head string) *herald.AuditReport {
		v := herald.NewAuditVerifier("acme")
		for _, r := range rows {
			if !v.Check(r) {
				break
			}
		}
		return v.Finish(head)
	}
	head := st.AuditHead["acme"]
	if r := verify(rows, head); !r.Verified || r.Checked != 6 || r.Head != head {
		t.Fatalf("intact chain: %+v", r)
	}

	tampered := slices.Clone(rows)
	tampered[3].Body = []byte(string(rows[3].Body[:len(rows[3].Body)-1]) + `,"extra":1}`)
	if r := verify(tampered, head); r.Verified || r.Break == nil || r.Break.Seq != rows[3].Seq || r.Checked != 3 {
		t.Errorf("changed body: %+v", r)
	}
	column := slices.Clone(rows)
	column[2].PrimaryID = "someone-else"
	if r := verify(column, head); r.Verified || r.Break.Seq != rows[2].Seq {
		t.Errorf("changed column: %+v", r)
	}
	removed := slices.Delete(slices.Clone(rows), 1, 2)
	if r := verify(removed, head); r.Verified || r.Break.Seq != rows[2].Seq {
		t.Errorf("removed event: %+v", r)
	}
	if r := verify(rows[:5], head); r.Verified || r.Break == nil {
		t.Errorf("removed newest: %+v", r)
	}
}

func TestChangeEvent(t *testing.T) {
	ctx := herald.NewContextWithActor(t.Context(), herald.Actor{ID: "key-1", Type: "apikey"})
	before := map[string]any{"unknownTypes": "accept", "same": 1}
	after := map[string]any{"unknownTypes": "reject", "same": 1, "added": true}
	e, err := herald.ChangeEvent(ctx, "acme", herald.SubjectSettings, "acme", herald.VerbUpdated, t0, before, after)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(e.Data, &data); err != nil {
		t.Fatal(err)
	}
	if string(data["before"]) != `{"added":null,"unknownTypes":"accept"}` || string(data["after"]) != `{"added":true,"unknownTypes":"reject"}` {
		t.Errorf("before %s after %s", data["before"], data["after"])
	}
	if e.AgentID != "key-1" || e.Category != "settings" || e.Type != "updated" || e.PrimaryID != "acme" || e.Origin != "system" {
		t.Errorf("event = %+v", e)
	}
}
