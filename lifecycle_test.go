package herald_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// builtin returns the built-in type category/typ.
func builtin(t *testing.T, key string) *herald.EventType {
	t.Helper()
	for _, typ := range herald.BuiltinEventTypes() {
		if typ.Key() == key {
			return typ
		}
	}
	t.Fatalf("no built-in type %s", key)
	return nil
}

// stored returns an event as a store holds it.
func stored(seq int64, category, typ, status string, at time.Duration, data string) *herald.Event {
	e := &herald.Event{
		ID: fmt.Sprintf("ev-%d", seq), Seq: seq, Category: category, Type: typ, EventStatus: status,
		EventLifecycleID: "lc-1", CoreCustomerID: "CUS1", AccountID: "acme",
		OccurredAt: t0.Add(at), ReceivedAt: t0.Add(time.Hour + time.Duration(seq)*time.Second),
	}
	if data != "" {
		e.Data = json.RawMessage(data)
	}
	return e
}

func statuses(l *herald.Lifecycle) []string {
	var out []string
	for _, s := range l.History {
		out = append(out, s.Status)
	}
	return out
}

func TestLifecycleInOrder(t *testing.T) {
	login := builtin(t, "authentication/login")
	l := herald.NewLifecycle("acme", "lc-1")
	for _, e := range []*herald.Event{
		stored(1, "authentication", "login", "attempted", 0, `{"external_login_id":"lc-1","ip_address":"10.0.0.1"}`),
		stored(2, "authentication", "login", "succeeded", time.Second, `{"external_login_id":"lc-1","login_method":"otp"}`),
	} {
		if err := l.Apply(e, login); err != nil {
			t.Fatalf("Apply(%s): %v", e.ID, err)
		}
	}
	if l.Status != "succeeded" || !l.Terminal || l.EventCount != 2 || l.EntityID != "CUS1" {
		t.Errorf("lifecycle = status %q terminal %v count %d entity %q", l.Status, l.Terminal, l.EventCount, l.EntityID)
	}
	if got := statuses(l); !slices.Equal(got, []string{"attempted", "succeeded"}) {
		t.Errorf("history = %v", got)
	}
	if want := `{"external_login_id":"lc-1","ip_address":"10.0.0.1","login_method":"otp"}`; string(l.Data) != want {
		t.Errorf("data = %s, want %s", l.Data, want)
	}
	if l.FirstSeq != 1 || l.LastSeq != 2 || !l.FirstOccurredAt.Equal(t0) || !l.LastOccurredAt.Equal(t0.Add(time.Second)) {
		t.Errorf("bounds = seq %d..%d occurred %v..%v", l.FirstSeq, l.LastSeq, l.FirstOccurredAt, l.LastOccurredAt)
	}
}

func TestLifecycleLateEventTakesItsPlace(t *testing.T) {
	login := builtin(t, "authentication/login")
	l := herald.NewLifecycle("acme", "lc-1")
	// succeeded arrives first; attempted, which occurred before it, later.
	if err := l.Apply(stored(1, "authentication", "login", "succeeded", time.Second, `{"a":"new"}`), login); err != nil {
		t.Fatal(err)
	}
	if err := l.Apply(stored(2, "authentication", "login", "attempted", 0, `{"a":"old","b":"only"}`), login); err != nil {
		t.Fatal(err)
	}
	if got := statuses(l); !slices.Equal(got, []string{"attempted", "succeeded"}) {
		t.Errorf("history = %v, want attempted then succeeded", got)
	}
	if l.Status != "succeeded" || !l.Terminal {
		t.Errorf("status = %q terminal %v, want succeeded terminal", l.Status, l.Terminal)
	}
	if want := `{"a":"new","b":"only"}`; string(l.Data) != want {
		t.Errorf("data = %s, want %s: the older event must not overwrite a newer field", l.Data, want)
	}
}

func TestLifecycleTerminalIsSticky(t *testing.T) {
	// Without transitions, anything may follow; a terminal status still
	// stays current.
	typ := &herald.EventType{Category: "c", Type: "t", Statuses: []herald.StatusDef{{Name: "open"}, {Name: "closed"}}, TerminalStatuses: []string{"closed"}}
	l := herald.NewLifecycle("acme", "lc-1")
	for _, e := range []*herald.Event{
		stored(1, "c", "t", "open", 0, ""),
		stored(2, "c", "t", "closed", time.Second, ""),
		stored(3, "c", "t", "open", 2*time.Second, ""),
	} {
		if err := l.Apply(e, typ); err != nil {
			t.Fatalf("Apply(%s): %v", e.ID, err)
		}
	}
	if l.Status != "closed" || !l.Terminal {
		t.Errorf("status = %q terminal %v, want closed terminal", l.Status, l.Terminal)
	}
	if got := statuses(l); !slices.Equal(got, []string{"open", "closed", "open"}) {
		t.Errorf("history = %v", got)
	}
}

func TestLifecycleTransitions(t *testing.T) {
	txn := builtin(t, "transactions/transaction")
	cases := []struct {
		name    string
		events  []*herald.Event
		pointer string // of the last event's error; "" for none
	}{
		{"pending then approved", []*herald.Event{
			stored(1, "transactions", "transaction", "pending", 0, ""),
			stored(2, "transactions", "transaction", "approved", time.Second, ""),
		}, ""},
		{"approved then pending later", []*herald.Event{
			stored(1, "transactions", "transaction", "approved", 0, ""),
			stored(2, "transactions", "transaction", "pending", time.Second, ""),
		}, "/eventStatus"},
		{"pending arriving late, before approved", []*herald.Event{
			stored(1, "transactions", "transaction", "approved", time.Second, ""),
			stored(2, "transactions", "transaction", "pending", 0, ""),
		}, ""},
		{"denied arriving late, before approved", []*herald.Event{
			stored(1, "transactions", "transaction", "approved", time.Second, ""),
			stored(2, "transactions", "transaction", "denied", 0, ""),
		}, "/eventStatus"},
		{"pending twice", []*herald.Event{
			stored(1, "transactions", "transaction", "pending", 0, ""),
			stored(2, "transactions", "transaction", "pending", time.Second, ""),
		}, ""},
		{"other type", []*herald.Event{
			stored(1, "transactions", "transaction", "pending", 0, ""),
			stored(2, "authentication", "login", "attempted", time.Second, ""),
		}, "/eventLifecycleId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := herald.NewLifecycle("acme", "lc-1")
			last := len(c.events) - 1
			for _, e := range c.events[:last] {
				if err := l.Apply(e, txn); err != nil {
					t.Fatalf("Apply(%s): %v", e.ID, err)
				}
			}
			before := l.Clone()
			err := l.Apply(c.events[last], txn)
			if c.pointer == "" {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				return
			}
			var he *herald.Error
			if !errorAs(err, &he) || he.Code != herald.EINVALID || len(he.Fields) != 1 || he.Fields[0].Pointer != c.pointer {
				t.Fatalf("Apply = %v, want EINVALID at %s", err, c.pointer)
			}
			if l.EventCount != before.EventCount || !slices.Equal(statuses(l), statuses(before)) {
				t.Errorf("a refused event changed the lifecycle: history %v", statuses(l))
			}
		})
	}
}

// TestLifecycleOrderIndependent applies the same events in many orders:
// status, history and data must come out the same every time.
func TestLifecycleOrderIndependent(t *testing.T) {
	typ := &herald.EventType{Category: "c", Type: "t",
		Statuses:         []herald.StatusDef{{Name: "a"}, {Name: "b"}, {Name: "done"}, {Name: "void"}},
		TerminalStatuses: []string{"done", "void"}}
	var events []*herald.Event
	for i := range 12 {
		status := []string{"a", "b", "done", "a", "void", ""}[i%6]
		events = append(events, stored(int64(i+1), "c", "t", status, time.Duration(i%7)*time.Second,
			fmt.Sprintf(`{"k%d":%d,"shared":%d}`, i%3, i, i)))
	}
	var want *herald.Lifecycle
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		order := slices.Clone(events)
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		l := herald.NewLifecycle("acme", "lc-1")
		for _, e := range order {
			if err := l.Apply(e, typ); err != nil {
				t.Fatal(err)
			}
		}
		if round == 0 {
			want = l
			continue
		}
		if l.Status != want.Status || string(l.Data) != string(want.Data) || !slices.Equal(statuses(l), statuses(want)) {
			t.Fatalf("order %d: status %q data %s history %v; first order gave %q %s %v",
				round, l.Status, l.Data, statuses(l), want.Status, want.Data, statuses(want))
		}
	}
	if want.Status != "void" && want.Status != "done" {
		t.Errorf("status = %q, want a terminal one", want.Status)
	}
}

func TestLifecycleDataRepeatedKeys(t *testing.T) {
	l := herald.NewLifecycle("acme", "lc-1")
	if err := l.Apply(stored(1, "c", "t", "", 0, `{"b":1,"a":1,"a":2}`), nil); err != nil {
		t.Fatal(err)
	}
	if want := `{"a":2,"b":1}`; string(l.Data) != want {
		t.Errorf("data = %s, want %s", l.Data, want)
	}
	if err := l.Apply(stored(2, "c", "t", "", time.Second, `{"a":3,"c":{"x":[1,"}"]}}`), nil); err != nil {
		t.Fatal(err)
	}
	if want := `{"a":3,"b":1,"c":{"x":[1,"}"]}}`; string(l.Data) != want {
		t.Errorf("data = %s, want %s", l.Data, want)
	}
}

func TestLifecycleIsBounded(t *testing.T) {
	l := herald.NewLifecycle("acme", "lc-1")
	for i := range herald.MaxLifecycleEvents {
		if err := l.Apply(stored(int64(i+1), "c", "t", "open", time.Duration(i)*time.Second, ""), nil); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
	}
	err := l.Apply(stored(herald.MaxLifecycleEvents+1, "c", "t", "open", time.Hour, ""), nil)
	var he *herald.Error
	if !errorAs(err, &he) || he.Fields[0].Pointer != "/eventLifecycleId" {
		t.Fatalf("event past the bound: %v, want EINVALID at /eventLifecycleId", err)
	}
	if l.EventCount != herald.MaxLifecycleEvents {
		t.Errorf("a refused event changed the count to %d", l.EventCount)
	}
}
