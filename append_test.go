package herald_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

func errorAs(err error, target **herald.Error) bool { return errors.As(err, target) }

// fresh returns a new event as the API hands it to a store.
func fresh(id, status string, at time.Duration, def *herald.EventType) *herald.Event {
	e := stored(0, "transactions", "transaction", status, at, `{"amount":"1.00"}`)
	e.ID, e.Seq, e.AccountID, e.Hash, e.Def = id, 0, "", "h-"+id, def
	return e
}

func newState() *herald.AppendState {
	return &herald.AppendState{
		LastSeq:    map[string]int64{"acme": 10},
		Stored:     map[herald.Ref]herald.StoredEvent{{AccountID: "acme", ID: "old"}: {Seq: 3, Hash: "h-old"}},
		Lifecycles: map[herald.Ref]*herald.Lifecycle{},
		Profiles:   map[herald.Ref]*herald.Profile{},
		Settings:   map[string]*herald.Settings{"acme": quiet()},
	}
}

// quiet returns settings that write no journey system events, for tests
// of the seqs of the events sent.
func quiet() *herald.Settings {
	s := herald.DefaultSettings()
	s.JourneyEvents = herald.JourneyEvents{}
	return s
}

func TestPlanAppend(t *testing.T) {
	txn := builtin(t, "transactions/transaction")
	b := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{
		fresh("p", "approved", 0, txn),
		fresh("old", "", 0, txn), // same hash as stored: duplicate
		fresh("q", "pending", time.Second, txn),
		fresh("r", "", 2*time.Second, txn),
	}}
	b.Events[1].Hash = "h-old"
	st := newState()
	plan, err := herald.PlanAppend([]*herald.AppendBatch{b}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	// p gets 11; old is a duplicate of 3; q is refused (pending may not
	// follow approved) and takes no seq; r gets 12.
	wantSeqs := []int64{11, 3, 0, 12}
	for i, r := range b.Results {
		if r.Seq != wantSeqs[i] {
			t.Errorf("result %d: seq %d, want %d (err %v)", i, r.Seq, wantSeqs[i], r.Err)
		}
	}
	if !b.Results[1].Duplicate || herald.ErrorCode(b.Results[2].Err) != herald.EINVALID {
		t.Errorf("results = %+v", b.Results)
	}
	if plan.LastSeq["acme"] != 12 || len(plan.Events) != 2 {
		t.Errorf("plan: last seq %d, %d events", plan.LastSeq["acme"], len(plan.Events))
	}
	if len(plan.Lifecycles) != 1 || plan.Lifecycles[0].EventCount != 2 || plan.Lifecycles[0].Status != "approved" {
		t.Errorf("plan lifecycles = %+v", plan.Lifecycles)
	}
	if len(plan.Profiles) != 1 || plan.Profiles[0].EventCount != 2 {
		t.Errorf("plan profiles = %+v", plan.Profiles)
	}
}

func TestPlanAppendAtomicUndoes(t *testing.T) {
	txn := builtin(t, "transactions/transaction")
	st := newState()
	l := herald.NewLifecycle("acme", "lc-1")
	if err := l.Apply(stored(5, "transactions", "transaction", "pending", 0, ""), txn); err != nil {
		t.Fatal(err)
	}
	st.Lifecycles[herald.Ref{AccountID: "acme", ID: "lc-1"}] = l

	atomic := &herald.AppendBatch{AccountID: "acme", Atomic: true, Events: []*herald.Event{
		fresh("a", "approved", time.Second, txn),
		fresh("b", "pending", 2*time.Second, txn), // may not follow approved
	}}
	after := &herald.AppendBatch{AccountID: "acme", Events: []*herald.Event{fresh("c", "denied", time.Second, txn)}}
	plan, err := herald.PlanAppend([]*herald.AppendBatch{atomic, after}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range atomic.Results {
		if r.Err == nil || r.Seq != 0 {
			t.Errorf("atomic result %d = %+v, want a failure without seq", i, r)
		}
	}
	if herald.ErrorCode(atomic.Results[1].Err) != herald.EINVALID || herald.ErrorCode(atomic.Results[0].Err) != herald.ECONFLICT {
		t.Errorf("atomic results: %v / %v", atomic.Results[0].Err, atomic.Results[1].Err)
	}
	// The atomic batch left nothing behind: c follows pending, not
	// approved, and takes seq 11.
	if r := after.Results[0]; r.Err != nil || r.Seq != 11 {
		t.Fatalf("after = %+v", r)
	}
	got := st.Lifecycles[herald.Ref{AccountID: "acme", ID: "lc-1"}]
	if got.Status != "denied" || got.EventCount != 2 || len(plan.Events) != 1 {
		t.Errorf("lifecycle status %q count %d; plan events %d", got.Status, got.EventCount, len(plan.Events))
	}
	if p := st.Profiles[herald.Ref{AccountID: "acme", ID: "CUS1"}]; p == nil || p.EventCount != 1 {
		t.Errorf("profile = %+v, want one event counted", p)
	}
}

func TestPlanAppendUnknownAccount(t *testing.T) {
	b := &herald.AppendBatch{AccountID: "nope", Events: []*herald.Event{fresh("a", "", 0, nil)}}
	if _, err := herald.PlanAppend([]*herald.AppendBatch{b}, newState(), nil); herald.ErrorCode(err) != herald.ENOTFOUND {
		t.Fatalf("PlanAppend = %v, want ENOTFOUND", err)
	}
}
