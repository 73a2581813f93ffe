package sqlite

import (
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// TestUpgradeTracksStoredEvents opens a database that a Herald without
// lifecycles and profiles wrote (schema 0001 only) and checks that the
// upgrade gives its events their entity and builds the lifecycles and
// profiles AppendEvents would have, and that appends go on from there.
func TestUpgradeTracksStoredEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	received := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(n int) time.Time { return received.Add(time.Duration(n) * time.Second) }
	old := []string{
		`{"id":"e1","category":"authentication","type":"login","coreCustomerId":"C1","eventStatus":"attempted","eventLifecycleId":"L1","occurredAt":"2026-03-01T12:00:05Z","data":{"ip":"10.0.0.1","device":"d-1"}}`,
		// Earlier than e1 though stored after it; the agent is a customer
		// in another case.
		`{"id":"e2","category":"authentication","type":"login","agentId":"C2","agentType":"Customer","eventStatus":"succeeded","eventLifecycleId":"L1","occurredAt":"2026-03-01T12:00:01Z","data":{"ip":"10.0.0.2"}}`,
		`{"id":"e3","category":"custom","type":"thing","agentId":"E1","agentType":"employee","occurredAt":"2026-03-01T12:00:02Z"}`,
		// Of another type than L1: it may not join it, and stays stored.
		`{"id":"e4","category":"custom","type":"thing","coreCustomerId":"C1","eventLifecycleId":"L1","occurredAt":"2026-03-01T12:00:03Z","data":{"ip":"x"}}`,
	}
	writeSchema0001(t, path, old, received)

	s, err := Open(t.Context(), path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	for entity, want := range map[string][]string{"C1": {"e1", "e4"}, "C2": {"e2"}, "E1": nil} {
		events, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{EntityID: entity, Limit: 10})
		if err != nil || !slices.Equal(eventIDs(events), want) {
			t.Errorf("FindEvents(entity %s) = %v, %v; want %v", entity, eventIDs(events), err, want)
		}
	}
	l, err := s.FindLifecycle(t.Context(), "acme", "L1")
	if err != nil {
		t.Fatalf("FindLifecycle(L1): %v", err)
	}
	wantHistory := []herald.LifecycleStep{
		{Status: "succeeded", EventID: "e2", Seq: 2, OccurredAt: at(1)},
		{Status: "attempted", EventID: "e1", Seq: 1, OccurredAt: at(5)},
	}
	if l.Category != "authentication" || l.Type != "login" || l.Status != "attempted" || l.Terminal ||
		l.EntityID != "C1" || l.EventCount != 2 || l.FirstSeq != 1 || l.LastSeq != 2 ||
		!l.FirstOccurredAt.Equal(at(1)) || !l.LastOccurredAt.Equal(at(5)) ||
		!slices.EqualFunc(l.History, wantHistory, sameStep) || string(l.Data) != `{"device":"d-1","ip":"10.0.0.1"}` {
		t.Errorf("lifecycle L1 after the upgrade = %+v", l)
	}
	p, err := s.FindProfile(t.Context(), "acme", "C1")
	if err != nil {
		t.Fatalf("FindProfile(C1): %v", err)
	}
	wantCounts := map[string]int64{"authentication/login": 1, "custom/thing": 1}
	if p.EventCount != 2 || p.FirstSeq != 1 || p.LastSeq != 4 || !p.FirstSeenAt.Equal(at(3)) || !p.LastSeenAt.Equal(at(5)) ||
		len(p.Attributes) != 0 || fmt.Sprint(p.Counts) != fmt.Sprint(wantCounts) || !p.CreatedAt.Equal(received) {
		t.Errorf("profile C1 after the upgrade = %+v", p)
	}
	profiles, err := s.FindProfiles(t.Context(), "acme", herald.ProfileFilter{Limit: 10})
	if err != nil || len(profiles) != 2 || profiles[0].ID != "C1" || profiles[1].ID != "C2" {
		t.Errorf("FindProfiles after the upgrade = %v, %v; want C1, C2", profiles, err)
	}

	// The next event counts on top of the upgrade's.
	e, err := herald.ParseEvent([]byte(`{"id":"e5","category":"custom","type":"thing","coreCustomerId":"C1","occurredAt":"2026-03-01T12:00:09Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	e.Complete(received.Add(time.Minute), herald.OriginAPI, nil)
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{e}}
	if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{b}); err != nil || b.Results[0].Seq != 5 {
		t.Fatalf("AppendEvents after the upgrade: %v, results %+v", err, b.Results)
	}
	if p, err := s.FindProfile(t.Context(), "acme", "C1"); err != nil || p.EventCount != 3 || p.Counts["custom/thing"] != 2 {
		t.Errorf("profile C1 after one more event = %+v, %v; want 3 events, 2 of custom/thing", p, err)
	}
}

// writeSchema0001 writes, at path, the database of an account "acme" with
// the raw events, as schema 0001 stored them.
func writeSchema0001(t *testing.T, path string, raw []string, received time.Time) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?"+url.Values{"_pragma": {"foreign_keys(1)"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	script, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
		string(script),
		"INSERT INTO schema_migrations VALUES ('0001_init.sql', 0)",
		fmt.Sprintf("INSERT INTO accounts (id, name, created_at, last_seq) VALUES ('acme', 'Acme', 0, %d)", len(raw)),
	} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("write schema 0001: %v", err)
		}
	}
	for i, r := range raw {
		e, err := herald.ParseEvent([]byte(r))
		if err != nil {
			t.Fatalf("ParseEvent(%s): %v", r, err)
		}
		e.Complete(received, herald.OriginAPI, nil)
		e.Seq = int64(i + 1)
		body, err := herald.MarshalEvent(e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), `INSERT INTO events (
			account_id, seq, id, category, type, event_status, event_lifecycle_id, core_customer_id,
			agent_id, session_id, primary_id, origin, occurred_at, received_at, hash, body
		) VALUES ('acme', ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, ?)`,
			e.Seq, e.ID, e.Category, e.Type, nullIfEmpty(e.EventStatus), nullIfEmpty(e.EventLifecycleID),
			nullIfEmpty(e.CoreCustomerID), nullIfEmpty(e.AgentID), e.Origin, micros(e.OccurredAt),
			micros(e.ReceivedAt), e.Hash, body); err != nil {
			t.Fatalf("store event %s: %v", e.ID, err)
		}
	}
}

func eventIDs(events []*herald.Event) []string {
	var ids []string
	for _, e := range events {
		ids = append(ids, e.ID)
	}
	return ids
}

func sameStep(a, b herald.LifecycleStep) bool {
	return a.Status == b.Status && a.Terminal == b.Terminal && a.EventID == b.EventID && a.Seq == b.Seq && a.OccurredAt.Equal(b.OccurredAt)
}
