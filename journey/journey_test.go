package journey

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore ends what is due, as many as the test says per call.
type fakeStore struct {
	mu    sync.Mutex
	due   int
	calls int
	fail  bool
	swept chan struct{}
}

func (f *fakeStore) ExpireJourneys(_ context.Context, _ time.Time, limit int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	defer func() {
		select {
		case f.swept <- struct{}{}:
		default:
		}
	}()
	if f.fail {
		return 0, errors.New("database down")
	}
	n := min(f.due, limit)
	f.due -= n
	return n, nil
}

func TestSweeperDrainsThenWaits(t *testing.T) {
	f := &fakeStore{due: 25, swept: make(chan struct{}, 1)}
	s := Start(f, Options{Interval: time.Hour, Batch: 10})
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		due, calls := f.due, f.calls
		f.mu.Unlock()
		if due == 0 && calls >= 3 {
			break
		}
		select {
		case <-f.swept:
		case <-deadline:
			t.Fatalf("due %d after %d calls", due, calls)
		}
	}
	s.Close()
	// 10 + 10 + 5: the third sweep was not full, so the sweeper waits for
	// the next interval instead of sweeping again.
	if f.calls != 3 {
		t.Errorf("calls = %d, want 3", f.calls)
	}
}

func TestSweeperSurvivesErrors(t *testing.T) {
	f := &fakeStore{fail: true, swept: make(chan struct{}, 1)}
	s := Start(f, Options{Interval: time.Millisecond})
	for range 3 {
		select {
		case <-f.swept:
		case <-time.After(5 * time.Second):
			t.Fatal("no sweep after an error")
		}
	}
	s.Close()
}
