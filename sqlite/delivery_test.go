package sqlite_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/sqlite"
)

// newSubscription opens a store in t's temporary folder with account acme
// and an active subscription sub_1 that owner node-1 holds.
func newSubscription(t testing.TB) *sqlite.Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "herald.db"))
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: "acme", Name: "Acme"}, nil); err != nil {
		t.Fatal(err)
	}
	sub := &herald.Subscription{ID: "sub_1", AccountID: "acme", URL: "https://example.com/hook"}
	sub.SetDefaults()
	if err := s.CreateSubscription(t.Context(), sub, herald.NewSigningSecret()); err != nil {
		t.Fatal(err)
	}
	held, err := s.LeaseSubscriptions(t.Context(), "node-1", time.Now(), time.Minute, 10)
	if err != nil || len(held) != 1 {
		t.Fatalf("LeaseSubscriptions = %d, %v; want sub_1", len(held), err)
	}
	return s
}

// TestSaveDeliveryKeepsValuesExactly checks that the values SaveDelivery
// passes to SQLite as one JSON array per batch come back as they were:
// texts that need escaping, extreme numbers, and the NULLs that stand for
// zero values. Invalid UTF-8 cannot be JSON: it comes back as U+FFFD.
func TestSaveDeliveryKeepsValuesExactly(t *testing.T) {
	s := newSubscription(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	attempts := []*herald.Attempt{
		{EventID: `e"1\`, Seq: math.MaxInt64, Number: 1, At: at, Outcome: herald.AttemptFailed, StatusCode: 503,
			LatencyMicros: math.MaxInt64, Error: "line 1\nline 2\t\u2028 <&>", Response: `{"ünïcode":"😀","nul":"` + "\x00" + `"}`},
		{EventID: "e2", Seq: 2, Number: 7, At: at.Add(time.Second), Outcome: herald.AttemptDelivered},
		{EventID: "e3", Seq: 3, Number: 1, At: at, Outcome: herald.AttemptFailed, Error: "bad \xff byte"},
	}
	next := at.Add(5 * time.Second)
	messages := []*herald.Message{
		{EventID: `e"1\`, Seq: math.MaxInt64, OrderKey: "ключ", State: herald.MessageRetrying, Attempts: 1,
			NextAttemptAt: next, LastStatus: 503, LastError: "line 1\nline 2", CreatedAt: at, UpdatedAt: at},
		{EventID: "e4", Seq: 4, State: herald.MessageWaiting, CreatedAt: at, UpdatedAt: at},
	}
	err := s.SaveDelivery(t.Context(), &herald.DeliveryProgress{
		AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1", Attempts: attempts, Messages: messages,
	})
	if err != nil {
		t.Fatalf("SaveDelivery: %v", err)
	}
	for i, a := range attempts {
		if i > 0 && a.ID != attempts[i-1].ID+1 {
			t.Errorf("attempt ids %d then %d; want consecutive ids in the order given", attempts[i-1].ID, a.ID)
		}
	}

	got, err := s.FindAttempts(t.Context(), "acme", "sub_1", herald.AttemptFilter{Limit: 10})
	if err != nil || len(got) != 3 {
		t.Fatalf("FindAttempts = %d, %v; want 3", len(got), err)
	}
	want := []herald.Attempt{*attempts[2], *attempts[1], *attempts[0]}
	want[0].Error = "bad \ufffd byte"
	for i, a := range got {
		if *a != want[i] {
			t.Errorf("attempt %d:\n got %+v\nwant %+v", i, *a, want[i])
		}
	}

	gotMessages, err := s.FindMessages(t.Context(), "acme", "sub_1", herald.MessageFilter{Limit: 10})
	if err != nil || len(gotMessages) != 2 {
		t.Fatalf("FindMessages = %d, %v; want 2", len(gotMessages), err)
	}
	for i, m := range []*herald.Message{messages[1], messages[0]} {
		if *gotMessages[i] != *m {
			t.Errorf("message %d:\n got %+v\nwant %+v", i, *gotMessages[i], *m)
		}
	}
}

// BenchmarkSaveDelivery measures deliveries saved per second: each call
// one durable commit of a batch of first attempts that got through, the
// cursor moved past them, as a deliverer saves them when all goes well;
// and, in the failing case, each attempt failed and its message stored.
func BenchmarkSaveDelivery(b *testing.B) {
	for _, c := range []struct {
		name   string
		size   int
		failed bool
	}{{"batch=1", 1, false}, {"batch=100", 100, false}, {"failing/batch=100", 100, true}} {
		b.Run(c.name, func(b *testing.B) {
			s := newSubscription(b)
			now := time.Now()
			var seq int64
			for b.Loop() {
				p := &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: "sub_1", Owner: "node-1"}
				for range c.size {
					seq++
					a := &herald.Attempt{EventID: fmt.Sprintf("ev-%d", seq), Seq: seq, Number: 1, At: now,
						Outcome: herald.AttemptDelivered, StatusCode: 200, LatencyMicros: 850, Response: `{"ok":true}`}
					if c.failed {
						a.Outcome, a.StatusCode, a.Response = herald.AttemptFailed, 503, "Service Unavailable"
						p.Messages = append(p.Messages, &herald.Message{EventID: a.EventID, Seq: seq, State: herald.MessageRetrying,
							Attempts: 1, NextAttemptAt: now.Add(5 * time.Second), LastStatus: 503, CreatedAt: now, UpdatedAt: now})
					}
					p.Attempts = append(p.Attempts, a)
				}
				p.Cursor = seq
				if err := s.SaveDelivery(b.Context(), p); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
