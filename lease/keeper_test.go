package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald/lease"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type key struct{ account, id string }

// item is what the fake store leases; a worker takes on a new gen of its
// item only if canRenew.
type item struct {
	account, id string
	gen         int
}

// worker records what the Keeper does to it. Run returns when stopped
// and released (a worker may take its time to save), or when quit.
type worker struct {
	item    item
	prev    *worker
	stopped chan struct{}
	release chan struct{} // closed: Run may return once stopped
	quit    chan struct{} // closed: Run returns at once
	done    chan struct{}
	wakes   chan struct{}
	stopMu  sync.Once

	began chan struct{} // closed when Run is done waiting for prev

	mu      sync.Mutex
	renewed []bool // the refreshed flag of each Renew
}

func (w *worker) Run() {
	defer close(w.done)
	if w.prev != nil {
		select {
		case <-w.prev.done:
		case <-w.stopped:
			return
		}
	}
	close(w.began)
	select {
	case <-w.quit:
		return
	case <-w.stopped:
	}
	<-w.release
}

func (w *worker) Stop() { w.stopMu.Do(func() { close(w.stopped) }) }

func (w *worker) WakeUp() {
	select {
	case w.wakes <- struct{}{}:
	default:
	}
}

func (w *worker) Renew(v item, refreshed bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.renewed = append(w.renewed, refreshed)
	return v.gen == w.item.gen
}

func (w *worker) woken() bool {
	select {
	case <-w.wakes:
		return true
	default:
		return false
	}
}

func (w *worker) isStopped() bool {
	select {
	case <-w.stopped:
		return true
	default:
		return false
	}
}

// heldGauge passes each count on, for a test to wait for a lease round.
type heldGauge chan int

func (g heldGauge) Set(n float64) { g <- int(n) }

// env is a Keeper over a fake store whose items the test sets.
type env struct {
	k *lease.Keeper[key, item, *worker]

	mu       sync.Mutex
	items    []item
	leaseErr error
	started  []*worker
	released []key
	// gaveUp counts Release calls; releaseErr is what they return.
	gaveUp     int
	releaseErr error
	// held receives the count of each round, leased after the Keeper's
	// first; failed, each failed lease.
	held   heldGauge
	failed chan error
}

func newEnv(t *testing.T, items ...item) *env {
	t.Helper()
	e := &env{items: items, held: make(heldGauge), failed: make(chan error)}
	e.k = lease.New(lease.Config[key, item, *worker]{
		Name:  "items",
		Owner: "node-1",
		TTL:   3 * time.Hour, // rounds come from Refresh alone
		Lease: func(ctx context.Context) ([]item, error) {
			e.mu.Lock()
			list, err := append([]item(nil), e.items...), e.leaseErr
			e.mu.Unlock()
			if err != nil {
				e.failed <- err
				return nil, err
			}
			return list, nil
		},
		Release: func(ctx context.Context, owner string) error {
			if owner != "node-1" {
				t.Errorf("Release of %q, want node-1", owner)
			}
			if _, ok := ctx.Deadline(); !ok {
				t.Error("Release without a deadline")
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, w := range e.started {
				select {
				case <-w.done:
				default:
					t.Errorf("leases released with the worker of %s running", w.item.id)
				}
			}
			e.gaveUp++
			return e.releaseErr
		},
		Key:     func(v item) key { return key{v.account, v.id} },
		Account: func(k key) string { return k.account },
		New: func(v item, prev *worker) *worker {
			w := &worker{
				item: v, prev: prev,
				stopped: make(chan struct{}), release: make(chan struct{}),
				quit: make(chan struct{}), done: make(chan struct{}),
				wakes: make(chan struct{}, 1), began: make(chan struct{}),
			}
			e.mu.Lock()
			e.started = append(e.started, w)
			e.mu.Unlock()
			return w
		},
		Released: func(k key) {
			e.mu.Lock()
			e.released = append(e.released, k)
			e.mu.Unlock()
		},
		Held: e.held,
	})
	t.Cleanup(func() {
		e.mu.Lock()
		for _, w := range e.started {
			select {
			case <-w.release:
			default:
				close(w.release)
			}
		}
		e.mu.Unlock()
		_ = e.k.Close()
	})
	e.k.Start()
	e.wantHeld(t, len(items))
	return e
}

func (e *env) set(items ...item) {
	e.mu.Lock()
	e.items = items
	e.mu.Unlock()
}

// round has the Keeper lease once and waits for it to finish.
func (e *env) round(t *testing.T, want int) {
	t.Helper()
	e.k.Refresh()
	e.wantHeld(t, want)
}

func (e *env) wantHeld(t *testing.T, want int) {
	t.Helper()
	select {
	case n := <-e.held:
		if n != want {
			t.Fatalf("%d held, want %d", n, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no lease round")
	}
}

// worker is the worker running for id.
func (e *env) worker(t *testing.T, id string) *worker {
	t.Helper()
	var w *worker
	e.mu.Lock()
	for _, s := range e.started {
		if s.item.id == id {
			w = s
		}
	}
	e.mu.Unlock()
	if w == nil {
		t.Fatalf("no worker for %s", id)
	}
	return w
}

func (e *env) startedCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.started)
}

func waitDone(t *testing.T, w *worker) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("worker of %s did not exit", w.item.id)
	}
}

// TestNotify: a worker runs for each item held, and Notify wakes those
// of one account only.
func TestNotify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0}, item{"a", "2", 0}, item{"b", "3", 0})
	e.k.Notify("a")
	for id, want := range map[string]bool{"1": true, "2": true, "3": false} {
		if got := e.worker(t, id).woken(); got != want {
			t.Errorf("worker %s woken %v, want %v", id, got, want)
		}
	}
	e.k.NotifyOthers("a", e.worker(t, "1"))
	for id, want := range map[string]bool{"1": false, "2": true, "3": false} {
		if got := e.worker(t, id).woken(); got != want {
			t.Errorf("NotifyOthers: worker %s woken %v, want %v", id, got, want)
		}
	}
	e.k.Notify("nobody")
}

// TestRenew: a worker held again is renewed, with refreshed true for a
// round Refresh asked for, and is not started again.
func TestRenew(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0})
	e.round(t, 1)
	w := e.worker(t, "1")
	w.mu.Lock()
	renewed := fmt.Sprint(w.renewed)
	w.mu.Unlock()
	if renewed != "[true]" {
		t.Errorf("renewed %s, want [true]", renewed)
	}
	if n := e.startedCount(); n != 1 {
		t.Errorf("%d workers started, want 1", n)
	}
}

// TestDropAndTakeBack: a worker of an item no longer held is stopped and
// its item released; if the item is held again before it exited, the
// successor gets it as predecessor and waits for it. Once it exited, it
// is forgotten.
func TestDropAndTakeBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0}, item{"a", "2", 0})
	old := e.worker(t, "1")

	e.set(item{"a", "2", 0})
	e.round(t, 1)
	if !old.isStopped() {
		t.Fatal("worker of an item no longer held not stopped")
	}
	e.mu.Lock()
	released := fmt.Sprint(e.released)
	e.mu.Unlock()
	if released != "[{a 1}]" {
		t.Errorf("released %s, want [{a 1}]", released)
	}
	e.k.Notify("a")
	if old.woken() {
		t.Error("a stopped worker was woken")
	}

	e.set(item{"a", "1", 0}, item{"a", "2", 0})
	e.round(t, 2)
	next := e.worker(t, "1")
	if next == old || next.prev != old {
		t.Fatalf("successor %p with prev %p, want a new worker with prev %p", next, next.prev, old)
	}
	select {
	case <-next.began:
		t.Fatal("successor began while its predecessor was saving")
	default:
	}
	close(old.release)
	select {
	case <-next.began:
	case <-time.After(5 * time.Second):
		t.Fatal("successor did not begin once its predecessor exited")
	}

	// Dropped and exited, then held again: no predecessor.
	e.set(item{"a", "2", 0})
	e.round(t, 1)
	close(next.release)
	waitDone(t, next)
	e.round(t, 1) // forgets next
	e.set(item{"a", "1", 0}, item{"a", "2", 0})
	e.round(t, 2)
	if w := e.worker(t, "1"); w == next || w.prev != nil {
		t.Errorf("worker after an exited one has prev %p, want none", w.prev)
	}
}

// TestReplace: a worker that cannot take its item on, or that exited by
// itself, is replaced by a successor that goes on from it.
func TestReplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0})
	first := e.worker(t, "1")

	e.set(item{"a", "1", 1})
	e.round(t, 1)
	second := e.worker(t, "1")
	if second == first || second.prev != first || !first.isStopped() {
		t.Fatalf("changed item: worker %p prev %p, want a new one after %p (stopped %v)", second, second.prev, first, first.isStopped())
	}
	close(first.release)

	close(second.quit)
	waitDone(t, second)
	e.round(t, 1)
	third := e.worker(t, "1")
	if third == second || third.prev != second {
		t.Fatalf("exited worker: worker %p prev %p, want a new one after %p", third, third.prev, second)
	}
}

// TestLeaseError: a failed lease changes nothing; the workers run on.
func TestLeaseError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0})
	w := e.worker(t, "1")
	e.mu.Lock()
	e.leaseErr = errors.New("store down")
	e.mu.Unlock()
	e.set()
	e.k.Refresh()
	select {
	case <-e.failed:
	case <-time.After(5 * time.Second):
		t.Fatal("no lease")
	}
	e.mu.Lock()
	e.leaseErr = nil
	e.mu.Unlock()
	e.set(item{"a", "1", 0})
	e.round(t, 1)
	if w.isStopped() || e.worker(t, "1") != w {
		t.Error("a failed lease stopped or replaced the worker")
	}
}

// TestClose: Close stops every worker, waits for them, then releases the
// leases and returns what that returned; Start after Close starts
// nothing, and Close may be called without Start.
func TestClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t, item{"a", "1", 0}, item{"b", "2", 0})
	one, two := e.worker(t, "1"), e.worker(t, "2")
	close(one.release)
	close(two.release)
	e.mu.Lock()
	e.releaseErr = errors.New("store down")
	e.mu.Unlock()
	if err := e.k.Close(); err == nil || err.Error() != "release items of node-1: store down" {
		t.Errorf("Close: %v, want the error of Release", err)
	}
	for _, w := range []*worker{one, two} {
		select {
		case <-w.done:
		default:
			t.Errorf("worker of %s still running after Close", w.item.id)
		}
	}
	e.k.Start()
	e.mu.Lock()
	e.releaseErr = nil
	e.mu.Unlock()
	if err := e.k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	e.mu.Lock()
	n := e.gaveUp
	e.mu.Unlock()
	if n != 2 || e.startedCount() != 2 {
		t.Errorf("%d releases, %d workers started; want 2 and 2", n, e.startedCount())
	}

	k := lease.New(lease.Config[key, item, *worker]{
		Name:  "items",
		Owner: "node-2",
		TTL:   3 * time.Hour,
		Lease: func(context.Context) ([]item, error) {
			t.Error("leased without Start")
			return nil, nil
		},
		Key:     func(v item) key { return key{v.account, v.id} },
		Account: func(k key) string { return k.account },
		New:     func(item, *worker) *worker { panic("no worker wanted") },
		Release: func(context.Context, string) error { return nil },
	})
	if err := k.Close(); err != nil {
		t.Error(err)
	}
	k.Start()
}
