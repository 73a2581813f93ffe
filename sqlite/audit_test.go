package sqlite

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// newAuditStore opens a fresh store with an account "acme" whose first key
// is "key_1", created by that key, and returns it with a context that acts
// as the key.
func newAuditStore(t *testing.T) (*Store, context.Context) {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "herald.db"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	_, prefix, hash := herald.NewKeySecret()
	key := &herald.APIKey{ID: "key_1", Prefix: prefix, Hash: hash, Scopes: []string{herald.ScopeAdmin}}
	ctx := herald.NewContextWithActor(t.Context(), herald.KeyActor(key))
	if err := s.CreateAccount(ctx, &herald.Account{ID: "acme", Name: "Acme"}, key); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	return s, ctx
}

// systemEvents returns the account's system events, by seq.
func systemEvents(t *testing.T, s *Store, accountID string) []*herald.Event {
	t.Helper()
	events, err := s.FindEvents(t.Context(), accountID, herald.EventFilter{Origin: herald.OriginSystem, Limit: 1000})
	if err != nil {
		t.Fatalf("FindEvents(system): %v", err)
	}
	return events
}

func verify(t *testing.T, s *Store, accountID string) *herald.AuditReport {
	t.Helper()
	r, err := s.VerifyAudit(t.Context(), accountID)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	return r
}

// TestAuditChainDetectsTampering writes system events through the API
// changes, checks that the chain holds, then changes a stored system
// event behind the store's back, and removes the newest, and checks that
// VerifyAudit finds each where it is.
func TestAuditChainDetectsTampering(t *testing.T) {
	s, ctx := newAuditStore(t)
	settings := herald.DefaultSettings()
	settings.UnknownTypes = herald.UnknownTypesReject
	if err := s.PutSettings(ctx, "acme", settings); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}
	_, prefix, hash := herald.NewKeySecret()
	if err := s.CreateKey(ctx, &herald.APIKey{ID: "key_2", AccountID: "acme", Prefix: prefix, Hash: hash, Scopes: []string{herald.ScopeRead}}); err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if err := s.DeleteKey(ctx, "acme", "key_2"); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}

	events := systemEvents(t, s, "acme")
	var got []string
	for _, e := range events {
		got = append(got, e.Category+" "+e.Type+" "+e.PrimaryID)
		if e.AgentID != "key_1" || e.AgentType != herald.AgentTypeAPIKey || e.ChainHash == "" {
			t.Errorf("system event %d %s %s: agent %s/%s, hash %q; want key_1/apikey and a hash",
				e.Seq, e.Category, e.Type, e.AgentID, e.AgentType, e.ChainHash)
		}
	}
	want := []string{
		"account created acme", "apikey created key_1", "settings updated acme",
		"apikey created key_2", "apikey deleted key_2",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("system events = %q, want %q", got, want)
	}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Errorf("system event %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
	if r := verify(t, s, "acme"); !r.Verified || r.Checked != 5 || r.LastSeq != 5 || r.Head != events[4].ChainHash || r.Break != nil {
		t.Fatalf("VerifyAudit before tampering = %+v", r)
	}
	var data struct {
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
	}
	if err := json.Unmarshal(events[2].Data, &data); err != nil || data.Before["unknownTypes"] != "accept" ||
		data.After["unknownTypes"] != "reject" || len(data.Before) != 1 {
		t.Errorf("settings updated data = %s (%v); want unknownTypes accept -> reject only", events[2].Data, err)
	}

	// Change the data of the settings updated event, as someone with the
	// database file could.
	target := events[2]
	var body map[string]any
	if err := json.Unmarshal(target.Body, &body); err != nil {
		t.Fatal(err)
	}
	body["data"].(map[string]any)["after"] = map[string]any{"unknownTypes": "accept"}
	forged, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	exec(t, s, "UPDATE events SET body = ? WHERE account_id = 'acme' AND seq = ?", forged, target.Seq)
	r := verify(t, s, "acme")
	if r.Verified || r.Break == nil || r.Break.Seq != target.Seq || r.Break.ID != target.ID || r.Checked != 2 ||
		r.Break.Stored != target.ChainHash || r.Break.Computed == "" || r.Break.Computed == target.ChainHash {
		t.Fatalf("VerifyAudit after changing seq %d (%s) = %+v, break %+v", target.Seq, target.ID, r, r.Break)
	}

	// Put it back: the chain holds again.
	exec(t, s, "UPDATE events SET body = ? WHERE account_id = 'acme' AND seq = ?", []byte(target.Body), target.Seq)
	if r := verify(t, s, "acme"); !r.Verified || r.Checked != 5 {
		t.Fatalf("VerifyAudit after restoring the event = %+v, break %+v", r, r.Break)
	}

	// A column that no longer says what the body says breaks it too.
	exec(t, s, "UPDATE events SET primary_id = 'key_9' WHERE account_id = 'acme' AND seq = 4")
	if r := verify(t, s, "acme"); r.Verified || r.Break == nil || r.Break.Seq != 4 || r.Break.ID != events[3].ID {
		t.Fatalf("VerifyAudit after changing a column of seq 4 = %+v, break %+v", r, r.Break)
	}
	exec(t, s, "UPDATE events SET primary_id = 'key_2' WHERE account_id = 'acme' AND seq = 4")

	// Remove the newest system event: every remaining link holds, but
	// the chain ends before the head the account row keeps.
	exec(t, s, "DELETE FROM events WHERE account_id = 'acme' AND seq = 5")
	r = verify(t, s, "acme")
	if r.Verified || r.Checked != 4 || r.Break == nil || r.Break.Seq != 4 ||
		r.Break.Stored != events[4].ChainHash || r.Break.Computed != events[3].ChainHash {
		t.Fatalf("VerifyAudit after deleting the newest system event = %+v, break %+v", r, r.Break)
	}

	// Removing one in the middle breaks the link of the next.
	exec(t, s, "DELETE FROM events WHERE account_id = 'acme' AND seq = 2")
	r = verify(t, s, "acme")
	if r.Verified || r.Checked != 1 || r.Break == nil || r.Break.Seq != 3 || r.Break.ID != events[2].ID {
		t.Fatalf("VerifyAudit after deleting seq 2 = %+v, break %+v", r, r.Break)
	}

	if _, err := s.VerifyAudit(t.Context(), "nobody"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("VerifyAudit(unknown account) = %v, want %s", err, herald.ENOTFOUND)
	}
}

func exec(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	if _, err := s.write.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestJourneysAndSweep runs a login through AppendEvents and the sweeper:
// a session and a visit begin with their system events, chained with the
// API's; a sweep before they expire ends nothing, one after ends both,
// once.
func TestJourneysAndSweep(t *testing.T) {
	s, ctx := newAuditStore(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	login, err := herald.ParseEvent([]byte(`{"id":"e1","category":"authentication","type":"userLoggedIn","coreCustomerId":"C1"}`))
	if err != nil {
		t.Fatal(err)
	}
	login.Complete(now, herald.OriginAPI, nil)
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{login}, By: herald.ActorFrom(ctx)}
	if err := s.AppendEvents(ctx, []*herald.AppendBatch{b}); err != nil {
		t.Fatalf("AppendEvents: %v", err)
	}
	res := b.Results[0]
	if res.Err != nil || res.Seq != 3 || res.SessionID == "" {
		t.Fatalf("login result = %+v; want seq 3 and a session id", res)
	}
	session, err := s.FindSessionByID(t.Context(), "acme", res.SessionID)
	if err != nil || !session.Open() || session.EntityID != "C1" || session.StartSeq != 3 || session.EventCount != 1 ||
		!session.ExpiresAt.Equal(now.Add(herald.DefaultSessionTimeout)) {
		t.Fatalf("FindSessionByID = %+v, %v", session, err)
	}
	visits, err := s.FindVisits(t.Context(), "acme", herald.JourneyFilter{EntityID: "C1", State: herald.JourneyOpen, Limit: 10})
	if err != nil || len(visits) != 1 || visits[0].FirstSeq != 3 || visits[0].EventCount != 1 {
		t.Fatalf("FindVisits(open, C1) = %+v, %v", visits, err)
	}

	// A resent login is a duplicate with the session it got.
	again, _ := herald.ParseEvent([]byte(`{"id":"e1","category":"authentication","type":"userLoggedIn","coreCustomerId":"C1"}`))
	again.Complete(now.Add(time.Second), herald.OriginAPI, nil)
	b = &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{again}}
	if err := s.AppendEvents(ctx, []*herald.AppendBatch{b}); err != nil || !b.Results[0].Duplicate || b.Results[0].SessionID != res.SessionID {
		t.Fatalf("resent login: %v, %+v; want a duplicate in session %s", err, b.Results, res.SessionID)
	}

	if n, err := s.ExpireJourneys(t.Context(), now.Add(time.Minute), 100); err != nil || n != 0 {
		t.Fatalf("ExpireJourneys(too early) = %d, %v; want 0", n, err)
	}
	late := now.Add(time.Hour)
	if n, err := s.ExpireJourneys(t.Context(), late, 100); err != nil || n != 2 {
		t.Fatalf("ExpireJourneys = %d, %v; want 2", n, err)
	}
	if n, err := s.ExpireJourneys(t.Context(), late, 100); err != nil || n != 0 {
		t.Fatalf("ExpireJourneys again = %d, %v; want 0", n, err)
	}
	session, err = s.FindSessionByID(t.Context(), "acme", res.SessionID)
	if err != nil || session.Open() || session.EndReason != herald.EndTimeout || !session.ExpiresAt.IsZero() ||
		!session.EndedAt.Equal(now.Add(herald.DefaultSessionTimeout)) {
		t.Fatalf("session after the sweep = %+v, %v", session, err)
	}
	closed, err := s.FindVisits(t.Context(), "acme", herald.JourneyFilter{State: herald.JourneyClosed, Limit: 10})
	if err != nil || len(closed) != 1 || closed[0].ID != visits[0].ID || closed[0].EndReason != herald.EndTimeout {
		t.Fatalf("FindVisits(closed) = %+v, %v", closed, err)
	}
	if open, err := s.FindSessions(t.Context(), "acme", herald.JourneyFilter{State: herald.JourneyOpen, Limit: 10}); err != nil || len(open) != 0 {
		t.Fatalf("FindSessions(open) = %+v, %v; want none", open, err)
	}

	var got []string
	for _, e := range systemEvents(t, s, "acme") {
		got = append(got, e.Category+" "+e.Type)
	}
	want := []string{
		"account created", "apikey created", "entity created", "visit started", "session started",
		"session terminated", "visit ended",
	}
	if !slices.Equal(got, want) {
		t.Errorf("system events = %q, want %q", got, want)
	}
	if r := verify(t, s, "acme"); !r.Verified || r.Checked != int64(len(want)) {
		t.Errorf("VerifyAudit = %+v, break %+v", r, r.Break)
	}

	// The audit filters: verbs, and subject types with or without ids.
	for _, tc := range []struct {
		f    herald.EventFilter
		want []string
	}{
		{herald.EventFilter{Types: []string{"started", "ended"}}, []string{"visit started", "session started", "visit ended"}},
		{herald.EventFilter{Sources: map[string][]string{"apikey": nil, "session": {res.SessionID}}},
			[]string{"apikey created", "session started", "session terminated"}},
		{herald.EventFilter{Types: []string{"created"}, Sources: map[string][]string{"entity": {"C1"}, "visit": {}}},
			[]string{"entity created"}},
		{herald.EventFilter{Sources: map[string][]string{"session": {"other"}}}, nil},
	} {
		tc.f.Origin, tc.f.Limit = herald.OriginSystem, 100
		events, err := s.FindEvents(t.Context(), "acme", tc.f)
		var got []string
		for _, e := range events {
			got = append(got, e.Category+" "+e.Type)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("FindEvents(types %v, sources %v) = %q, %v; want %q", tc.f.Types, tc.f.Sources, got, err, tc.want)
		}
	}
}
