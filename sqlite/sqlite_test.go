package sqlite_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/sqlite"
	"github.com/heraldhq/herald/storetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newDatabase gives each case a database file of its own in t.TempDir().
func newDatabase(t *testing.T) storetest.Opener {
	path := filepath.Join(t.TempDir(), "data", "herald.db")
	return func() storetest.Store { return open(t, path) }
}

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, newDatabase)
}

// TestReopen checks that a second Open of the same file finds the schema
// recorded and the data in place.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	a := &herald.Account{ID: "acme", Name: "Acme", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := s.CreateAccount(t.Context(), a, nil); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := open(t, path).FindAccountByID(t.Context(), "acme")
	if err != nil || got.Name != "Acme" {
		t.Fatalf("after reopening: FindAccountByID = %+v, %v", got, err)
	}
}

func TestOpenRefusesNonFilePaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?mode=ro"} {
		if s, err := sqlite.Open(t.Context(), path, sqlite.Options{}); err == nil {
			s.Close()
			t.Errorf("Open(%q): no error", path)
		}
	}
}

// BenchmarkAppendEvents measures stored events per second for calls of one
// batch of 1 and of 100 events, each call one durable commit.
func BenchmarkAppendEvents(b *testing.B) {
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "herald.db"))
			_, _, hash := herald.NewKeySecret()
			key := &herald.APIKey{ID: "key_bench", Prefix: "hk_bench", Hash: hash, Scopes: []string{herald.ScopeAdmin}}
			if err := s.CreateAccount(b.Context(), &herald.Account{ID: "bench", Name: "Bench"}, key); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			n := 0
			for b.Loop() {
				b.StopTimer() // measure the store, not the parsing
				events := make([]*herald.Event, size)
				for i := range events {
					raw := fmt.Sprintf(`{"id":"ev-%d","category":"transfers","type":"singleTransferCreated",`+
						`"coreCustomerId":"cust-%d","sessionId":"sess-%d","eventStatus":"attempted",`+
						`"data":{"amount":"125.00","currency":"EUR","n":%d}}`, n, n%1000, n%5000, n)
					e, err := herald.ParseEvent([]byte(raw))
					if err != nil {
						b.Fatal(err)
					}
					e.Complete(now, herald.OriginAPI, nil)
					events[i] = e
					n++
				}
				b.StartTimer()
				batch := &herald.AppendBatch{AccountID: "bench", Events: events}
				if err := s.AppendEvents(b.Context(), []*herald.AppendBatch{batch}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkAppendLogins measures the whole AppendEvents path for events
// of a registered type: batches of 100 built-in logins, each attempted
// then succeeded in the same batch, so that every event updates a
// lifecycle and a profile, and every second one writes attributes.
func BenchmarkAppendLogins(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "herald.db"))
	if err := s.CreateAccount(b.Context(), &herald.Account{ID: "bench", Name: "Bench"}, nil); err != nil {
		b.Fatal(err)
	}
	var login *herald.EventType
	for _, t := range herald.BuiltinEventTypes() {
		if t.Key() == "authentication/login" {
			login = t
		}
	}
	now := time.Now()
	n := 0
	for b.Loop() {
		b.StopTimer()
		events := make([]*herald.Event, 100)
		for i := range events {
			status := [2]string{"attempted", "succeeded"}[n%2]
			raw := fmt.Sprintf(`{"id":"ev-%d","category":"authentication","type":"login","eventStatus":%q,`+
				`"eventLifecycleId":"login-%d","coreCustomerId":"cust-%d",`+
				`"data":{"external_login_id":"login-%d","ip_address":"192.0.2.%d","login_method":"password"}}`,
				n, status, n/2, (n/2)%1000, n/2, n%250)
			e, err := herald.ParseEvent([]byte(raw))
			if err != nil {
				b.Fatal(err)
			}
			e.Complete(now, herald.OriginAPI, nil)
			e.Def = login
			events[i] = e
			n++
		}
		b.StartTimer()
		batch := &herald.AppendBatch{AccountID: "bench", Events: events}
		if err := s.AppendEvents(b.Context(), []*herald.AppendBatch{batch}); err != nil {
			b.Fatal(err)
		}
		for _, r := range batch.Results {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
