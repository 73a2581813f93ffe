package storetest

import (
	"context"
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
	appendOne(t, s, "acme", stored)

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
	wantSeqs(t, s, "acme", []string{"stored"})
}
