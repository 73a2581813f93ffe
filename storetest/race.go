package storetest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

// raceDeadline bounds the writers of a concurrency case. They need a
// second or two on two cores; the margin is for a loaded CI machine. The
// deadline is there so that a deadlock fails the case with what each
// writer was doing, rather than hang until go test's own timeout.
const raceDeadline = 15 * time.Second

// testSameIDFromTwoNodes sends the same events through two handles
// ("nodes") at once, as a client that retries against another node would.
// Every id must be stored once, and every copy answered as created or as a
// duplicate of the stored event. A store that finds ids already taken
// before it holds the account's lock sees both copies as new, and the
// loser's insert fails on the unique index: that must never reach the
// caller as an error. Some ids are also sent with other content, so that
// different contents race for one id; which one wins is up to timing, and
// every copy of the other content must get ECONFLICT.
func testSameIDFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	base := quietAccount(t, nodes[0], "acme")

	const (
		numIDs         = 300
		writersPerNode = 8
		conflictEvery  = 10 // one id in 10 is sent by node 1 with other content too
	)
	// The nodes receive at different times, so that a duplicate's
	// receivedAt tells which copy it was matched with.
	received := []time.Time{baseTime.Add(time.Minute), baseTime.Add(time.Hour)}
	// Writer w of each node sends the same ids in the same order, in calls
	// cut differently, so that calls overlap in part.
	callSizes := [][]int{{1, 4, 7}, {3, 1, 5}}
	var writers []*raceWriter
	for n, node := range nodes {
		for w := range writersPerNode {
			var events []*herald.Event
			for i := w; i < numIDs; i += writersPerNode {
				id := fmt.Sprintf("ev-%03d", i)
				if n == 1 && i%conflictEvery == 3 {
					// Just before the usual content: in the same call, or in
					// the call before, it may win the id.
					events = append(events, loginEvent(t, id, "other", received[n]))
				}
				events = append(events, loginEvent(t, id, "x", received[n]))
			}
			writers = append(writers, &raceWriter{
				name:  fmt.Sprintf("node %d writer %d", n, w),
				node:  node,
				calls: cutCalls("acme", events, callSizes[n]),
			})
		}
	}

	runWriters(t, writers)

	stored := storedEvents(t, nodes[1], "acme", base, numIDs)
	created := map[string]int{}
	for _, w := range writers {
		for c, call := range w.calls {
			for _, b := range call {
				for i, e := range b.Events {
					r := b.Results[i]
					what := fmt.Sprintf("%s, call %d: %s with data %s", w.name, c+1, e.ID, e.Data)
					s, ok := stored[e.ID]
					switch {
					case !ok:
						// storedEvents found the count right: another id is
						// stored in its place.
						t.Errorf("%s: not stored, result %s", what, fmtResult(r))
					case !bytes.Equal(e.Data, s.Data):
						// Stores need not return Hash: the data tells the
						// two contents apart.
						wantConflict(t, what, r, e.ID)
					case r.Duplicate:
						wantDuplicate(t, what, r, s.Seq, s.ReceivedAt)
					default:
						wantStored(t, what, r, s.Seq, s.ReceivedAt)
						created[e.ID]++
					}
				}
			}
		}
	}
	otherWon := 0
	for id, e := range stored {
		if created[id] != 1 {
			t.Errorf("event %s is stored once (seq %d), but %d copies were answered as created", id, e.Seq, created[id])
		}
		if strings.Contains(string(e.Data), "other") {
			otherWon++
		}
	}
	t.Logf("the other content won %d of %d contested ids", otherWon, numIDs/conflictEvery)
}

// testManyAccountsNoDeadlock has writers on two nodes make calls that each
// span two to four accounts, taken in varying orders. A store that locks
// accounts in the order a call names them deadlocks two such calls; under
// SERIALIZABLE it fails one with a serialization error. Every call must
// succeed, and each account must count its events 1, 2, 3, … at the seqs
// the writers were told.
func testManyAccountsNoDeadlock(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}

	const (
		numAccounts    = 6
		writersPerNode = 4
		callsPerWriter = 15
	)
	accounts := make([]string, numAccounts)
	base := map[string]int64{}
	for i := range accounts {
		accounts[i] = fmt.Sprintf("acct-%d", i)
		base[accounts[i]] = quietAccount(t, nodes[i%len(nodes)], accounts[i])
	}
	sent := map[string]int{} // events sent to each account
	var writers []*raceWriter
	for n, node := range nodes {
		for w := range writersPerNode {
			// A fixed seed per writer: a failure comes back on the next run.
			rng := rand.New(rand.NewPCG(uint64(n), uint64(w)))
			calls := make([][]*herald.AppendBatch, callsPerWriter)
			for c := range calls {
				for _, a := range rng.Perm(numAccounts)[:2+rng.IntN(3)] {
					b := &herald.AppendBatch{AccountID: accounts[a]}
					for i := range 1 + rng.IntN(3) {
						id := fmt.Sprintf("n%d-w%d-c%d-%d", n, w, c, i)
						b.Events = append(b.Events, loginEvent(t, id, "x", baseTime))
					}
					calls[c] = append(calls[c], b)
					sent[b.AccountID] += len(b.Events)
				}
			}
			writers = append(writers, &raceWriter{name: fmt.Sprintf("node %d writer %d", n, w), node: node, calls: calls})
		}
	}

	runWriters(t, writers)

	told := map[string]map[string]int64{} // by account and id
	for _, a := range accounts {
		told[a] = map[string]int64{}
	}
	for _, w := range writers {
		// A call that returned was committed before the writer's next
		// began: its seqs in an account only grow.
		last := map[string]int64{}
		for c, call := range w.calls {
			for _, b := range call {
				for i, e := range b.Events {
					r := b.Results[i]
					what := fmt.Sprintf("%s, call %d: %s in %s", w.name, c+1, e.ID, b.AccountID)
					if r.Err != nil || r.Duplicate || r.Seq <= last[b.AccountID] {
						t.Errorf("%s: got %s, want stored after seq %d", what, fmtResult(r), last[b.AccountID])
						continue
					}
					last[b.AccountID] = r.Seq
					told[b.AccountID][e.ID] = r.Seq
				}
			}
		}
	}
	for _, a := range accounts {
		stored := storedEvents(t, nodes[0], a, base[a], sent[a])
		for id, seq := range told[a] {
			if e, ok := stored[id]; !ok || e.Seq != seq {
				t.Errorf("event %s of %s: writer was told seq %d, the store holds %v", id, a, seq, seqOf(e, ok))
			}
		}
	}
}

// raceWriter is one goroutine of a concurrency case: it makes its calls
// one after the other on its node. The calls are built beforehand, since
// a goroutine must not call t.Fatal, and hold the results once it is done.
type raceWriter struct {
	name  string
	node  Store
	calls [][]*herald.AppendBatch
	// returned counts the calls that returned, for the report when the
	// writers miss the deadline.
	returned atomic.Int64
	err      error
}

func (w *raceWriter) run(ctx context.Context) error {
	for c, call := range w.calls {
		if err := w.node.AppendEvents(ctx, call); err != nil {
			return fmt.Errorf("call %d of %d (%s): error code %s: %w",
				c+1, len(w.calls), describeCall(call), herald.ErrorCode(err), err)
		}
		w.returned.Add(1)
		for _, b := range call {
			if len(b.Results) != len(b.Events) {
				return fmt.Errorf("call %d of %d (%s): %d results for %d events of %s",
					c+1, len(w.calls), describeCall(call), len(b.Results), len(b.Events), b.AccountID)
			}
		}
	}
	return nil
}

// runWriters runs every writer in a goroutine of its own and waits for
// them, failing the test if one failed. Writers still running at
// raceDeadline have their context cancelled, and the test fails with the
// call each of them had in flight.
func runWriters(t *testing.T, writers []*raceWriter) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.err = w.run(ctx) })
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	start := time.Now()
	deadline := time.NewTimer(raceDeadline)
	defer deadline.Stop()
	select {
	case <-done:
		t.Logf("%d writers done in %s", len(writers), time.Since(start).Round(time.Millisecond))
	case <-deadline.C:
		seen := inFlight(writers)
		cancel()
		<-done
		t.Errorf("writers not done after %s (deadlocked?); still running at the deadline:\n%s", raceDeadline, seen)
	}
	for _, w := range writers {
		if w.err != nil {
			t.Errorf("%s: %v", w.name, w.err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// inFlight says, for each writer still running, how far it got and which
// call it is waiting for. It reads only what the stores do not write.
func inFlight(writers []*raceWriter) string {
	var sb strings.Builder
	for _, w := range writers {
		if n := int(w.returned.Load()); n < len(w.calls) {
			fmt.Fprintf(&sb, "\t%s: %d of %d calls returned; waiting for call %d (%s)\n",
				w.name, n, len(w.calls), n+1, describeCall(w.calls[n]))
		}
	}
	return sb.String()
}

// describeCall names the accounts and event ids of a call.
func describeCall(call []*herald.AppendBatch) string {
	parts := make([]string, len(call))
	for i, b := range call {
		parts[i] = b.AccountID + ": " + strings.Join(ids(b.Events), " ")
	}
	return strings.Join(parts, "; ")
}

// cutCalls cuts events into calls of the given sizes, in turn. Every
// other call of more than one event is split into two batches.
func cutCalls(accountID string, events []*herald.Event, sizes []int) [][]*herald.AppendBatch {
	var calls [][]*herald.AppendBatch
	for c := 0; len(events) > 0; c++ {
		size := min(sizes[c%len(sizes)], len(events))
		part := events[:size]
		events = events[size:]
		if c%2 == 1 && size > 1 {
			calls = append(calls, []*herald.AppendBatch{
				{AccountID: accountID, Events: part[:size/2]},
				{AccountID: accountID, Events: part[size/2:]},
			})
		} else {
			calls = append(calls, []*herald.AppendBatch{{AccountID: accountID, Events: part}})
		}
	}
	return calls
}

// storedEvents returns the account's events after seq base by id,
// failing unless they are want events with seqs base+1 to base+want, each
// id once.
func storedEvents(t *testing.T, s herald.EventService, accountID string, base int64, want int) map[string]*herald.Event {
	t.Helper()
	list, err := s.FindEvents(t.Context(), accountID, herald.EventFilter{AfterSeq: base, Limit: want + 1})
	if err != nil {
		t.Fatalf("FindEvents(%s): %v", accountID, err)
	}
	byID := make(map[string]*herald.Event, len(list))
	for i, e := range list {
		if e.Seq != base+int64(i+1) {
			t.Fatalf("%s: event %s comes at position %d with seq %d, want seq %d (seqs must have no gaps)",
				accountID, e.ID, i+1, e.Seq, base+int64(i+1))
		}
		if prev, ok := byID[e.ID]; ok {
			t.Fatalf("%s: event %s is stored twice, at seq %d and %d", accountID, e.ID, prev.Seq, e.Seq)
		}
		byID[e.ID] = e
	}
	if len(list) != want {
		t.Fatalf("%s holds %d events, want %d", accountID, len(list), want)
	}
	return byID
}

func seqOf(e *herald.Event, ok bool) string {
	if !ok {
		return "no such event"
	}
	return fmt.Sprintf("seq %d", e.Seq)
}

// dealSends deals the indexes of order to numWriters writers in turn,
// writersPerNode of them on each of two nodes, and returns the indexes
// each writer sends. An index that is a multiple of resendEvery goes as
// well to the same writer number on the other node.
func dealSends(order []int, numWriters, writersPerNode, resendEvery int) [][]int {
	sends := make([][]int, numWriters)
	for k, i := range order {
		w := k % numWriters
		sends[w] = append(sends[w], i)
		if i%resendEvery == 0 {
			other := (w + writersPerNode) % numWriters // the same writer number on the other node
			sends[other] = append(sends[other], i)
		}
	}
	return sends
}

// testTrackingFromTwoNodes has writers on two nodes append the events of a
// few lifecycles and profiles at once, each writer in an order of its own,
// and some events sent by both nodes. A store that reads a lifecycle or a
// profile before it holds the account's lock, or writes one back over the
// changes of a call that committed meanwhile, loses updates. Every
// lifecycle and profile must end as applying the stored events one by one,
// in seq order, leaves it; since no two events share an occurredAt, that is
// also what any other order would give.
func testTrackingFromTwoNodes(t *testing.T, newDB NewDatabase) {
	open := newDB(t)
	nodes := []Store{open(), open()}
	base := quietAccount(t, nodes[0], "acme")
	job := jobType("acme") // no transitions: no event is refused

	const (
		numLifecycles  = 6
		perLifecycle   = 50
		numLoose       = 60 // events of an entity but of no lifecycle
		numEntities    = 3
		writersPerNode = 4
		resendEvery    = 7 // one event in 7 is sent by both nodes
	)
	total := numLifecycles*perLifecycle + numLoose
	rng := rand.New(rand.NewPCG(4, 4))
	occurred := rng.Perm(total)
	statuses := job.StatusNames()
	type spec struct {
		def    *herald.EventType
		fields map[string]any
	}
	specs := make([]spec, total)
	for i := range specs {
		f := map[string]any{"id": fmt.Sprintf("ev-%03d", i), "occurredAt": sec(occurred[i])}
		if i < numLifecycles*perLifecycle {
			l := i % numLifecycles
			f["eventLifecycleId"] = fmt.Sprintf("J%d", l)
			f["eventStatus"] = statuses[rng.IntN(len(statuses))]
			f["coreCustomerId"] = fmt.Sprintf("C%d", l%numEntities)
			f["data"] = map[string]any{"n": i, fmt.Sprintf("f%d", i%4): i}
			specs[i] = spec{job, f}
			continue
		}
		f["category"], f["type"] = "jobs", "ping"
		f["agentId"], f["agentType"] = fmt.Sprintf("C%d", i%numEntities), "customer"
		f["data"] = map[string]any{"n": i}
		specs[i] = spec{nil, f}
	}

	sends := dealSends(rng.Perm(total), len(nodes)*writersPerNode, writersPerNode, resendEvery) // spec indexes, by writer
	var writers []*raceWriter
	for w, list := range sends {
		n := w / writersPerNode
		rng.Shuffle(len(list), func(a, b int) { list[a], list[b] = list[b], list[a] })
		var events []*herald.Event
		for _, i := range list {
			// Each copy is an event of its own: AppendEvents writes Seq into it.
			events = append(events, typedEvent(t, specs[i].def, specs[i].fields, baseTime.Add(time.Duration(n+1)*time.Minute)))
		}
		writers = append(writers, &raceWriter{
			name:  fmt.Sprintf("node %d writer %d", n, w%writersPerNode),
			node:  nodes[n],
			calls: cutCalls("acme", events, []int{1, 4, 7}),
		})
	}

	runWriters(t, writers)

	// Every event was stored once; its other copy is a duplicate of it.
	stored := storedEvents(t, nodes[0], "acme", base, total)
	for _, w := range writers {
		for c, call := range w.calls {
			for _, b := range call {
				for i, e := range b.Events {
					r := b.Results[i]
					s := stored[e.ID]
					if r.Err != nil || r.Seq != s.Seq {
						t.Errorf("%s, call %d: %s: got %s, want stored or duplicate with seq %d", w.name, c+1, e.ID, fmtResult(r), s.Seq)
					}
				}
			}
		}
	}

	bySeq := make([]*herald.Event, total)
	for _, e := range stored {
		bySeq[e.Seq-base-1] = e
	}
	wantL, wantP := map[string]*herald.Lifecycle{}, map[string]*herald.Profile{}
	for _, e := range bySeq {
		var def *herald.EventType
		if e.Type == job.Type {
			def = job
		}
		if id := e.EventLifecycleID; id != "" {
			if wantL[id] == nil {
				wantL[id] = herald.NewLifecycle("acme", id)
			}
			if err := wantL[id].Apply(e, def); err != nil {
				t.Fatalf("lifecycle %s: applying event %s: %v", id, e.ID, err)
			}
		}
		if id := e.EntityID(); id != "" {
			if wantP[id] == nil {
				wantP[id] = herald.NewProfile("acme", id)
			}
			if err := wantP[id].Apply(e, def); err != nil {
				t.Fatalf("profile %s: applying event %s: %v", id, e.ID, err)
			}
		}
	}
	if len(wantL) != numLifecycles || len(wantP) != numEntities {
		t.Fatalf("the stored events make %d lifecycles and %d profiles, want %d and %d", len(wantL), len(wantP), numLifecycles, numEntities)
	}
	for _, id := range slices.Sorted(maps.Keys(wantL)) {
		got := findLifecycle(t, nodes[1], "acme", id)
		if got.EventCount != perLifecycle || len(got.History) != perLifecycle {
			t.Errorf("lifecycle %s counts %d events and %d statuses, want %d of each: updates were lost",
				id, got.EventCount, len(got.History), perLifecycle)
		}
		wantLifecycle(t, "lifecycle "+id+" after concurrent appends", got, wantL[id])
	}
	for _, id := range slices.Sorted(maps.Keys(wantP)) {
		got := findProfile(t, nodes[1], "acme", id)
		if got.EventCount != wantP[id].EventCount {
			t.Errorf("profile %s counts %d events, want %d: updates were lost", id, got.EventCount, wantP[id].EventCount)
		}
		wantProfile(t, "profile "+id+" after concurrent appends", got, wantP[id])
	}
}
