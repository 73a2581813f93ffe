package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// TestCheckpointRestartsWAL checks the two checkpoints the background
// goroutine runs: PASSIVE copies the WAL while writers go on, RESTART
// starts it over so that it does not grow without end.
func TestCheckpointRestartsWAL(t *testing.T) {
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "herald.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateAccount(t.Context(), &herald.Account{ID: "acme"}, nil); err != nil {
		t.Fatal(err)
	}
	write := func(from, n int) {
		t.Helper()
		var events []*herald.Event
		for i := from; i < from+n; i++ {
			e, err := herald.ParseEvent(fmt.Appendf(nil, `{"id":"e%d","category":"c","type":"t","coreCustomerId":"cust-%d"}`, i, i))
			if err != nil {
				t.Fatal(err)
			}
			e.Complete(time.Now(), herald.OriginAPI, nil)
			events = append(events, e)
		}
		if err := s.AppendEvents(t.Context(), []*herald.AppendBatch{{AccountID: "acme", Events: events}}); err != nil {
			t.Fatal(err)
		}
	}

	write(0, 2000)
	before, err := s.checkpoint(t.Context(), "PASSIVE")
	if err != nil {
		t.Fatalf("PASSIVE checkpoint: %v", err)
	}
	if _, err := s.checkpoint(t.Context(), "RESTART"); err != nil {
		t.Fatalf("RESTART checkpoint: %v", err)
	}
	write(2000, 1)
	after, err := s.checkpoint(t.Context(), "PASSIVE")
	if err != nil {
		t.Fatalf("PASSIVE checkpoint: %v", err)
	}
	if before < 100 || after >= before {
		t.Errorf("WAL frames: %d after 2000 events, %d after a RESTART and one more event; want the WAL started over", before, after)
	}
	// Nothing was lost on the way. (Each event also began a profile and
	// a visit, with their system events.)
	events, err := s.FindEvents(t.Context(), "acme", herald.EventFilter{Origin: herald.OriginAPI, Limit: 3000, BodiesOnly: true})
	if err != nil || len(events) != 2001 || events[2000].ID != "e2000" {
		t.Errorf("FindEvents after the checkpoints = %d events, %v; want the 2001 written, e2000 last", len(events), err)
	}
}
