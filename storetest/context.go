package storetest

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// testCancelledContext checks that every call gives up on a cancelled
// context, and that the writes among them stored nothing.
func testCancelledContext(t *testing.T, newDB NewDatabase) {
	s := newDB(t)()
	_, key := newAccount(t, s, "acme")
	now := baseTime.Add(time.Minute)
	stored := loginEvent(t, "stored", "x", now)
	job := jobType("acme")
	if _, err := s.PutEventType(t.Context(), job); err != nil {
		t.Fatalf("PutEventType: %v", err)
	}
	tracked := typedEvent(t, job, map[string]any{
		"id": "tracked", "eventLifecycleId": "J1", "eventStatus": "running", "coreCustomerId": "C1",
		"occurredAt": baseTime, "data": map[string]any{"owner": "Ann"},
	}, now)
	res := appendOne(t, s, "acme", stored, tracked)
	session := res[0].SessionID
	visits, err := s.FindVisits(t.Context(), "acme", herald.JourneyFilter{Limit: 10})
	if err != nil || len(visits) != 1 {
		t.Fatalf("FindVisits = %d visits, %v; want C1's", len(visits), err)
	}
	visit := visits[0].ID
	// Due by now, so that ExpireJourneys would have something to end.
	sweepAt := now.Add(24 * time.Hour)
	before := allEvents(t, s, "acme", herald.EventFilter{})

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"CreateAccount", func() error {
			return s.CreateAccount(ctx, &herald.Account{ID: "globex", CreatedAt: now}, newKey("globex", "first", now))
		}},
		{"FindAccountByID", func() error { _, err := s.FindAccountByID(ctx, "acme"); return err }},
		{"CreateKey", func() error { return s.CreateKey(ctx, newKey("acme", "cancelled", now)) }},
		{"FindKeyByHash", func() error { _, err := s.FindKeyByHash(ctx, key.Hash); return err }},
		{"FindKeys", func() error { _, err := s.FindKeys(ctx, "acme"); return err }},
		{"DeleteKey", func() error { return s.DeleteKey(ctx, "acme", key.ID) }},
		{"AppendEvents", func() error {
			b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{loginEvent(t, "cancelled", "x", now)}}
			return s.AppendEvents(ctx, []*herald.AppendBatch{b})
		}},
		{"FindEventByID", func() error { _, err := s.FindEventByID(ctx, "acme", "stored"); return err }},
		{"FindEvents", func() error { _, err := s.FindEvents(ctx, "acme", herald.EventFilter{Limit: 10}); return err }},
		{"FindEventTypes", func() error { _, err := s.FindEventTypes(ctx, "acme"); return err }},
		{"FindEventType", func() error { _, err := s.FindEventType(ctx, "acme", "jobs", "job"); return err }},
		{"PutEventType", func() error { _, err := s.PutEventType(ctx, simpleType("acme", "misc", "cancelled")); return err }},
		{"DeleteEventType", func() error { return s.DeleteEventType(ctx, "acme", "jobs", "job") }},
		{"FindSettings", func() error { _, err := s.FindSettings(ctx, "acme"); return err }},
		{"PutSettings", func() error {
			return s.PutSettings(ctx, "acme", &herald.Settings{UnknownTypes: herald.UnknownTypesReject})
		}},
		{"FindLifecycle", func() error { _, err := s.FindLifecycle(ctx, "acme", "J1"); return err }},
		{"FindLifecycles", func() error { _, err := s.FindLifecycles(ctx, "acme", herald.LifecycleFilter{Limit: 10}); return err }},
		{"FindProfile", func() error { _, err := s.FindProfile(ctx, "acme", "C1"); return err }},
		{"FindProfiles", func() error { _, err := s.FindProfiles(ctx, "acme", herald.ProfileFilter{Limit: 10}); return err }},
		{"EraseProfile", func() error { _, err := s.EraseProfile(ctx, "acme", "C1"); return err }},
		{"FindSessionByID", func() error { _, err := s.FindSessionByID(ctx, "acme", session); return err }},
		{"FindSessions", func() error { _, err := s.FindSessions(ctx, "acme", herald.JourneyFilter{Limit: 10}); return err }},
		{"FindVisitByID", func() error { _, err := s.FindVisitByID(ctx, "acme", visit); return err }},
		{"FindVisits", func() error { _, err := s.FindVisits(ctx, "acme", herald.JourneyFilter{Limit: 10}); return err }},
		{"ExpireJourneys", func() error { _, err := s.ExpireJourneys(ctx, sweepAt, 100); return err }},
		{"VerifyAudit", func() error { _, err := s.VerifyAudit(ctx, "acme"); return err }},
	} {
		if err := tc.call(); err == nil {
			t.Errorf("%s with a cancelled context: no error", tc.name)
		}
	}

	// Nothing was written.
	if _, err := s.FindAccountByID(t.Context(), "globex"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("account created with a cancelled context: FindAccountByID = %v", err)
	}
	keys, err := s.FindKeys(t.Context(), "acme")
	if err != nil || len(keys) != 1 {
		t.Errorf("keys after cancelled calls = %v, %v; want only the first", keyNames(keys), err)
	}
	// No event either, system events included.
	if after := allEvents(t, s, "acme", herald.EventFilter{}); !slices.Equal(ids(after), ids(before)) {
		t.Errorf("events after cancelled calls = %v, want those before, %v", ids(after), ids(before))
	}
	if _, err := s.FindEventType(t.Context(), "acme", "misc", "cancelled"); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Errorf("type created with a cancelled context: FindEventType = %v", err)
	}
	if _, err := s.FindEventType(t.Context(), "acme", "jobs", "job"); err != nil {
		t.Errorf("type deleted with a cancelled context: FindEventType = %v", err)
	}
	if got, err := s.FindSettings(t.Context(), "acme"); err != nil || !reflect.DeepEqual(got, herald.DefaultSettings()) {
		t.Errorf("settings after a cancelled PutSettings = %+v, %v; want the defaults", got, err)
	}
	if _, err := s.FindProfile(t.Context(), "acme", "C1"); err != nil {
		t.Errorf("profile erased with a cancelled context: FindProfile = %v", err)
	}
	if e, err := s.FindEventByID(t.Context(), "acme", "tracked"); err != nil || e.Redacted || len(e.Data) == 0 {
		t.Errorf("event redacted with a cancelled context: FindEventByID = %+v, %v", e, err)
	}
	if got, err := s.FindSessionByID(t.Context(), "acme", session); err != nil || !got.Open() {
		t.Errorf("session ended with a cancelled context: FindSessionByID = %+v, %v", got, err)
	}
	if got, err := s.FindVisitByID(t.Context(), "acme", visit); err != nil || !got.Open() {
		t.Errorf("visit ended with a cancelled context: FindVisitByID = %+v, %v", got, err)
	}
}
