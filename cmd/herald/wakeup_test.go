package main

import (
	"fmt"
	"testing"
	"time"
)

// TestWebhookWakesAcrossNodesPostgres: an event stored by one server
// reaches a subscription that another server delivers at once (through
// PostgreSQL's LISTEN/NOTIFY), not at that server's next poll (5 s).
func TestWebhookWakesAcrossNodesPostgres(t *testing.T) {
	t.Parallel()
	dbURL := postgresTestURL(t)
	r := newReceiver(t)
	key := randomKey()
	a := startServer(t, t.TempDir(), key, "--db", dbURL, "--allow-private-targets")
	b := startServer(t, t.TempDir(), key, "--db", dbURL, "--allow-private-targets")
	sub := a.subscribe(fmt.Sprintf(`{"url":%q,"filter":{"origin":"api"}}`, r.URL))
	event := func(id string) string {
		return fmt.Sprintf(`{"id":%q,"category":"gadgets","type":"singleGadgetMade"}`, id)
	}
	a.ingest(event("warm-up"))
	poll(t, 20*time.Second, "the first event arrives", func() bool { return r.count("warm-up") > 0 })
	_, other := leaseHolder(t, dbURL, sub.ID, a, b)

	// Each event is sent once the one before arrived, that is right after
	// the holder's deliverer last read the log: a poll would find each
	// one PollInterval later.
	const limit = 2 * time.Second
	var took []time.Duration
	for i := range 5 {
		id := fmt.Sprintf("wake-%d", i)
		start := time.Now()
		other.ingest(event(id))
		poll(t, 10*time.Second, id+" arrives", func() bool { return r.count(id) > 0 })
		took = append(took, time.Since(start))
	}
	for i, d := range took {
		if d > limit {
			t.Errorf("event %d, stored by the node without the lease, arrived after %s, want under %s", i, d.Round(time.Millisecond), limit)
		}
	}
	t.Logf("stored on one node, delivered by the other: %v", took)
}
