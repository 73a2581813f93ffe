package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/postgres"
)

// leaseFixture is a database with an account of n active subscriptions,
// and two stores on it: two nodes, each with a pool of its own.
func leaseFixture(t *testing.T, n int) (nodes [2]*postgres.Store, ids []string) {
	t.Helper()
	dbURL := newSchema(t)
	nodes = [2]*postgres.Store{open(t, dbURL), open(t, dbURL)}
	ctx := t.Context()
	if err := nodes[0].CreateAccount(ctx, &herald.Account{ID: "acme", CreatedAt: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		sub := &herald.Subscription{ID: fmt.Sprintf("sub-%02d", i), AccountID: "acme", URL: "https://example.com/hook"}
		sub.SetDefaults()
		if err := nodes[i%2].CreateSubscription(ctx, sub, herald.NewSigningSecret()); err != nil {
			t.Fatalf("CreateSubscription: %v", err)
		}
		ids = append(ids, sub.ID)
	}
	return nodes, ids
}

func subIDs(list []*herald.Subscription) []string {
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	slices.Sort(ids)
	return ids
}

// Two nodes lease at once, while each saves deliveries for what it holds:
// no subscription is ever held by both, none is left out, and a node never
// loses one it holds while its lease is valid, even when its own
// SaveDelivery holds the row's lock as it renews.
func TestLeasesFromTwoNodes(t *testing.T) {
	t.Parallel()
	const n = 24
	nodes, ids := leaseFixture(t, n)
	owners := [2]string{"node-a", "node-b"}

	var (
		mu     sync.Mutex
		holder = map[string]int{} // subscription id → node that got it
		errs   []error
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, fmt.Errorf(format, args...))
	}
	ctx, cancel := context.WithCancel(t.Context())
	var leasers, savers sync.WaitGroup
	for node := range 2 {
		var held atomic.Pointer[[]string]
		held.Store(&[]string{})
		// The leaser: a long ttl, so that nothing expires during the test.
		leasers.Go(func() {
			var before []string
			for round := range 30 {
				list, err := nodes[node].LeaseSubscriptions(ctx, owners[node], time.Now(), time.Hour, n)
				if err != nil {
					fail("%s round %d: LeaseSubscriptions: %v", owners[node], round, err)
					return
				}
				got := subIDs(list)
				for _, id := range before {
					if !slices.Contains(got, id) {
						fail("%s round %d: lost %s, which it held", owners[node], round, id)
					}
				}
				mu.Lock()
				for _, id := range got {
					if other, ok := holder[id]; ok && other != node {
						errs = append(errs, fmt.Errorf("%s round %d: got %s, which %s holds", owners[node], round, id, owners[other]))
					}
					holder[id] = node
				}
				mu.Unlock()
				before = got
				held.Store(&got)
			}
		})
		// Two savers on what the node holds, so that the leaser meets row
		// locks of its own node.
		for w := range 2 {
			savers.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					held := *held.Load()
					if len(held) == 0 {
						runtime.Gosched()
					}
					for _, id := range held {
						err := nodes[node].SaveDelivery(context.Background(), &herald.DeliveryProgress{
							AccountID: "acme", SubscriptionID: id, Owner: owners[node], Cursor: int64(i),
							Attempts: []*herald.Attempt{{EventID: fmt.Sprintf("ev-%d-%d", w, i), Seq: int64(i), Number: 1,
								At: time.Now(), Outcome: herald.AttemptDelivered, StatusCode: 200}},
						})
						if err != nil {
							fail("%s: SaveDelivery(%s): %v", owners[node], id, err)
							return
						}
					}
				}
			})
		}
	}
	leasers.Wait()
	cancel()
	savers.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(holder) != n {
		t.Errorf("%d subscriptions leased, want all %d", len(holder), n)
	}
	// Each refuses to save for what the other holds.
	for id, node := range holder {
		other := 1 - node
		err := nodes[other].SaveDelivery(t.Context(), &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: id, Owner: owners[other], Cursor: 1 << 40})
		if herald.ErrorCode(err) != herald.ECONFLICT {
			t.Errorf("%s: SaveDelivery(%s), held by %s: %v, want ECONFLICT", owners[other], id, owners[node], err)
		}
	}
	// Nothing the refused saves carried was stored.
	for _, id := range ids {
		sub, err := nodes[0].FindSubscriptionByID(t.Context(), "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		if sub.Cursor >= 1<<40 {
			t.Errorf("%s: cursor %d moved by a node without the lease", id, sub.Cursor)
		}
	}
}

// When its owner stops renewing, another node takes a subscription once
// the lease has expired, and not before; a SaveDelivery of the first
// owner racing with the takeover is either wholly stored before it or
// refused and stores nothing.
func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	const n = 4
	nodes, ids := leaseFixture(t, n)
	a, b := nodes[0], nodes[1]
	ctx := t.Context()
	t0 := time.Now()
	const ttl = 30 * time.Second
	first, err := a.FindSubscriptionByID(ctx, "acme", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	created := first.Cursor

	list, err := a.LeaseSubscriptions(ctx, "node-a", t0, ttl, n)
	if err != nil || !slices.Equal(subIDs(list), ids) {
		t.Fatalf("node-a LeaseSubscriptions = %v, %v; want all of %v", subIDs(list), err, ids)
	}
	// Before the lease expires, node-b gets nothing.
	list, err = b.LeaseSubscriptions(ctx, "node-b", t0.Add(ttl-time.Second), ttl, n)
	if err != nil || len(list) != 0 {
		t.Fatalf("node-b LeaseSubscriptions before expiry = %v, %v; want none", subIDs(list), err)
	}

	// node-a saves on ids[0] without pause, each save with an attempt and
	// a cursor of its own, while node-b takes over once the lease expired.
	var (
		taken   atomic.Bool
		saved   []int64 // cursors of the saves that succeeded
		lateErr error
		saveErr error
	)
	stop, warm := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		refused := 0
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			after := taken.Load()
			err := a.SaveDelivery(context.Background(), &herald.DeliveryProgress{
				AccountID: "acme", SubscriptionID: ids[0], Owner: "node-a", Cursor: 1000 + i,
				Attempts: []*herald.Attempt{{EventID: fmt.Sprintf("a-%d", i), Seq: i, Number: 1,
					At: time.Now(), Outcome: herald.AttemptFailed, StatusCode: 500, Error: "node-a"}},
				Messages: []*herald.Message{{EventID: fmt.Sprintf("a-%d", i), Seq: i, State: herald.MessageRetrying,
					Attempts: 1, NextAttemptAt: time.Now().Add(time.Minute)}},
			})
			switch {
			case err == nil && after:
				lateErr = fmt.Errorf("save %d, begun after node-b took the lease, succeeded", i)
				return
			case err == nil:
				if saved = append(saved, i); len(saved) == 50 {
					close(warm)
				}
			case herald.ErrorCode(err) == herald.ECONFLICT:
				if refused++; refused == 3 {
					return
				}
			default:
				saveErr = err
				return
			}
		}
	})
	select {
	case <-warm:
	case <-time.After(10 * time.Second):
	}
	var got []string
	for time.Since(t0) < 20*time.Second {
		list, err := b.LeaseSubscriptions(ctx, "node-b", t0.Add(ttl+time.Second), ttl, n)
		if err != nil {
			t.Fatalf("node-b LeaseSubscriptions after expiry: %v", err)
		}
		if got = subIDs(list); slices.Contains(got, ids[0]) {
			break
		}
	}
	taken.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(stop)
		<-done
		t.Fatal("node-a's saves were not refused after node-b took the lease")
	}
	if saveErr != nil {
		t.Fatalf("node-a SaveDelivery: %v", saveErr)
	}
	if lateErr != nil {
		t.Fatal(lateErr)
	}
	if !slices.Contains(got, ids[0]) {
		t.Fatalf("node-b never took %s: it holds %v", ids[0], got)
	}
	// Once expired, node-b takes them all; node-a, which held them, gets
	// none back.
	list, err = b.LeaseSubscriptions(ctx, "node-b", t0.Add(ttl+time.Second), ttl, n)
	if err != nil || !slices.Equal(subIDs(list), ids) {
		t.Errorf("node-b LeaseSubscriptions = %v, %v; want all of %v", subIDs(list), err, ids)
	}
	list, err = a.LeaseSubscriptions(ctx, "node-a", t0.Add(ttl+2*time.Second), ttl, n)
	if err != nil || len(list) != 0 {
		t.Errorf("node-a LeaseSubscriptions after the takeover = %v, %v; want none", subIDs(list), err)
	}

	// What node-a stored is exactly what its successful saves carried.
	attempts, err := b.FindAttempts(ctx, "acme", ids[0], herald.AttemptFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	messages, err := b.FindMessages(ctx, "acme", ids[0], herald.MessageFilter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != len(saved) || len(messages) != len(saved) {
		t.Errorf("%d attempts and %d messages stored, want %d: one per successful save", len(attempts), len(messages), len(saved))
	}
	sub, err := b.FindSubscriptionByID(ctx, "acme", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	want := created
	if len(saved) > 0 {
		want = 1000 + slices.Max(saved)
	}
	if sub.Cursor != want {
		t.Errorf("cursor = %d, want %d: the last successful save's", sub.Cursor, want)
	}
	t.Logf("node-a saved %d times before the takeover", len(saved))

	// node-b saves; node-a is refused.
	if err := b.SaveDelivery(ctx, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: ids[0], Owner: "node-b", Cursor: 1 << 20}); err != nil {
		t.Errorf("node-b SaveDelivery: %v", err)
	}
	err = a.SaveDelivery(ctx, &herald.DeliveryProgress{AccountID: "acme", SubscriptionID: ids[0], Owner: "node-a", Cursor: 1 << 30})
	if herald.ErrorCode(err) != herald.ECONFLICT {
		t.Errorf("node-a SaveDelivery after the takeover: %v, want ECONFLICT", err)
	}

	// Released leases are free at once.
	if err := b.ReleaseSubscriptions(ctx, "node-b"); err != nil {
		t.Fatal(err)
	}
	list, err = a.LeaseSubscriptions(ctx, "node-a", t0.Add(ttl+3*time.Second), ttl, n)
	if err != nil || !slices.Equal(subIDs(list), ids) {
		t.Errorf("node-a LeaseSubscriptions after node-b released = %v, %v; want all of %v", subIDs(list), err, ids)
	}
}

// BenchmarkSaveDelivery measures the hot path of delivery: one
// subscription's deliverer saving what it sent, a batch of deliveries per
// call (an attempt each, the cursor moved, one message in ten retried).
// b.N counts deliveries.
func BenchmarkSaveDelivery(b *testing.B) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			dbURL := newSchema(b)
			s := open(b, dbURL)
			ctx := context.Background()
			if err := s.CreateAccount(ctx, &herald.Account{ID: "bench", CreatedAt: time.Now()}, nil); err != nil {
				b.Fatal(err)
			}
			sub := &herald.Subscription{ID: "sub", AccountID: "bench", URL: "https://example.com/hook"}
			sub.SetDefaults()
			if err := s.CreateSubscription(ctx, sub, herald.NewSigningSecret()); err != nil {
				b.Fatal(err)
			}
			if _, err := s.LeaseSubscriptions(ctx, "node", time.Now(), time.Hour, 10); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for start := 0; start < b.N; start += size {
				p := &herald.DeliveryProgress{AccountID: "bench", SubscriptionID: "sub", Owner: "node"}
				now := time.Now()
				for i := start; i < min(start+size, b.N); i++ {
					seq := int64(i + 1)
					a := &herald.Attempt{EventID: fmt.Sprintf("ev-%d", i), Seq: seq, Number: 1, At: now,
						Outcome: herald.AttemptDelivered, StatusCode: 200, LatencyMicros: 900}
					if i%10 == 0 {
						a.Outcome, a.StatusCode, a.Response = herald.AttemptFailed, 503, "unavailable"
						p.Messages = append(p.Messages, &herald.Message{EventID: a.EventID, Seq: seq,
							State: herald.MessageRetrying, Attempts: 1, NextAttemptAt: now.Add(5 * time.Second), LastStatus: 503})
					}
					p.Attempts = append(p.Attempts, a)
					p.Cursor = seq
				}
				if err := s.SaveDelivery(ctx, p); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
