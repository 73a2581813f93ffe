package ingest

import (
	"testing"
	"time"
)

// WaitQueued polls until n requests wait in c's queue.
func WaitQueued(t *testing.T, c *Committer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(c.queues[0]) < n {
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d requests, want %d", len(c.queues[0]), n)
		}
		time.Sleep(time.Millisecond)
	}
}
