package ingest_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/ingest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gate is a store whose commits wait until released, so that a test can
// pile requests up behind a commit in progress.
type gate struct {
	mu      sync.Mutex
	groups  []int // batches per AppendEvents call
	entered chan struct{}
	release chan struct{}
	err     error
}

func (g *gate) AppendEvents(ctx context.Context, batches []*herald.AppendBatch) error {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups = append(g.groups, len(batches))
	for _, b := range batches {
		b.Results = make([]herald.AppendResult, len(b.Events))
	}
	return g.err
}

func batchOf(n int) *herald.AppendBatch {
	b := &herald.AppendBatch{AccountID: "a"}
	for range n {
		b.Events = append(b.Events, &herald.Event{})
	}
	return b
}

func TestConcurrentRequestsShareOneCommit(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
	c := ingest.New(g, ingest.Options{})
	defer c.Close()

	// The first request starts a commit and holds it open.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.Append(context.Background(), batchOf(1)) }()
	<-g.entered

	// Ten more arrive while it flushes: they must go into one next commit.
	errs := make(chan error, 10)
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- c.Append(context.Background(), batchOf(2)) }()
	}
	ingest.WaitQueued(t, c, 10)
	close(g.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.groups) != 2 || g.groups[0] != 1 || g.groups[1] != 10 {
		t.Fatalf("commits: got batches per commit %v, want [1 10]", g.groups)
	}
}

func TestCommitErrorReachesEveryRequest(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{}), err: errors.New("disk full")}
	close(g.release)
	c := ingest.New(g, ingest.Options{})
	defer c.Close()
	if err := c.Append(context.Background(), batchOf(1)); err == nil {
		t.Fatal("Append: got nil, want the store's error")
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 100), release: make(chan struct{})}
	close(g.release)
	c := ingest.New(g, ingest.Options{})
	c.Close()
	if err := c.Append(context.Background(), batchOf(1)); !errors.Is(err, ingest.ErrClosed) {
		t.Fatalf("Append after Close: got %v, want ErrClosed", err)
	}
}
